#!/usr/bin/env bash
# Add-on entry point: all logic lives in the voiceclone package (tested); this only sequences it.
set -euo pipefail
VOICECLONE=${VOICECLONE:-/opt/voiceclone/bin/voiceclone}
OPTIONS=${OPTIONS:-/data/options.json}
SETTINGS=${SETTINGS:-/data/voiceclone.yaml}

# options.json -> settings file; enroll new/changed voices, delete removed ones (rejections are logged).
"$VOICECLONE" addon-prepare --options "$OPTIONS" --output "$SETTINGS" -v
# Wyoming for Assist/tts.speak (announced through the Supervisor), MQTT bridge when a broker is configured.
exec "$VOICECLONE" serve --config "$SETTINGS" --supervisor-discovery "$@"
