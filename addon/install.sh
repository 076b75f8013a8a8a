#!/usr/bin/env bash
# The add-on image's install step (run by the Dockerfile): the voiceclone server into a virtual environment.
#   VOICECLONE_SOURCE  a pip requirement URL for this repository: the Dockerfile passes the release tag of the
#                      add-on's version; tests pass a local clone (git+file:///path@ref)
#   VENV               where to install (default /opt/voiceclone)
#   TORCH_INDEX_URL    where the CPU build of torch comes from (default: PyTorch's CPU index; a mirror may stand in)
set -euo pipefail
: "${VOICECLONE_SOURCE:?set VOICECLONE_SOURCE, e.g. git+https://github.com/OWNER/REPO@v1.2.3}"
VENV=${VENV:-/opt/voiceclone}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip  # Debian's may be too old to parse a git URL requirement
# The CPU build of torch (Pocket TTS and the speaker encoder need it); CUDA has no place in an add-on (HA OS has
# no NVIDIA drivers).
"$VENV/bin/pip" install "torch==2.13.0" --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" \
  --extra-index-url https://pypi.org/simple
"$VENV/bin/pip" install "voiceclone[pocket,omnivoice] @ ${VOICECLONE_SOURCE}"
# OmniVoice's package without its declared dependencies (gradio, torchaudio, ...): see pyproject's omnivoice extra.
# No torchaudio build matches this torch; the engine stands in for the one function the package calls.
"$VENV/bin/pip" install --no-deps "omnivoice==0.2.1"
"$VENV/bin/voiceclone" --help > /dev/null
echo "installed $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("voiceclone"))') into $VENV"
