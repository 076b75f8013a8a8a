#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine with Python 3.11: system packages, .venv, the project.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng sox libsndfile1 festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts mosquitto
  chromium chromium-driver)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# resemblyzer (quality benchmark, demo) needs torch: take the CPU build first so no CUDA wheels are pulled.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==2.13.0"
stamp=.venv/.voiceclone-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q -e ".[test,quality,bench,pocket,qwen3,omnivoice]"
  # Qwen3-TTS's package without its declared dependencies (gradio, a CUDA torch): see pyproject's qwen3 extra.
  # faster-qwen3-tts is only the reference that benchmarks/gpu.py measures the engine against.
  .venv/bin/pip install -q --no-deps "qwen-tts-hf==0.1.1.post1" "faster-qwen3-tts==0.5.4"
  # OmniVoice's package the same way (see pyproject's omnivoice extra).
  .venv/bin/pip install -q --no-deps "omnivoice==0.2.1"
  touch "$stamp"
fi
# Home Assistant integration tests: HA's own harness in a venv of its own on Python 3.13.0 (HA 2025.4.4, the oldest
# Home Assistant we support; see tests_ha/requirements.txt).
PY_HA=${PYTHON_HA:-$HOME/.pyenv/versions/3.13.0/bin/python}
[ -x "$PY_HA" ] || PY_HA=$(command -v python3.13 || true)
if [ -z "$PY_HA" ]; then
  echo "Python 3.13 not found (set PYTHON_HA): it runs Home Assistant's test harness" >&2
  exit 1
fi
if [ ! -x .venv-ha/bin/python ]; then
  "$PY_HA" -m venv .venv-ha
  .venv-ha/bin/pip install -q --upgrade pip
fi
stamp_ha=.venv-ha/.voiceclone-installed
if [ ! -f "$stamp_ha" ] || [ tests_ha/requirements.txt -nt "$stamp_ha" ]; then
  .venv-ha/bin/pip install -q -r tests_ha/requirements.txt
  touch "$stamp_ha"
fi
echo "set-up done: $(.venv/bin/python --version), voiceclone $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("voiceclone"))')"
