#!/usr/bin/env bash
# Supervisor builds an add-on with its own folder as the Docker context, so the package source must be inside
# addon/. This copies it there (addon/voiceclone-src/, git-ignored); run it before building or publishing.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=addon/voiceclone-src
rm -rf "$dest"
mkdir -p "$dest"
cp pyproject.toml README.md "$dest/"
cp -r voiceclone_core "$dest/voiceclone_core"
find "$dest" -name __pycache__ -type d -prune -exec rm -rf {} +
echo "copied the voiceclone source into $dest"
