#!/usr/bin/env bash
# Install what `mucon corpus build` needs: General MIDI soundfonts (Debian packages), music21
# (its bundled score corpus) and tinysoundfont (the synthesiser). Idempotent and non-interactive:
# run it again and it only checks.
set -euo pipefail

SF_PACKAGES="fluid-soundfont-gm musescore-general-soundfont-small timgm6mb-soundfont"
PYTHON="${PYTHON:-python3}"

missing=""
for pkg in $SF_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists only when apt cannot find a package it needs.
    if ! $SUDO apt-get install -y --no-install-recommends $missing; then
        $SUDO apt-get update
        $SUDO apt-get install -y --no-install-recommends $missing
    fi
fi

"$PYTHON" -c "import music21" 2>/dev/null || "$PYTHON" -m pip install music21
# --no-deps: tinysoundfont's wheel declares nothing it needs at run time beyond numpy, which mucon has.
"$PYTHON" -c "import tinysoundfont" 2>/dev/null || "$PYTHON" -m pip install --no-deps tinysoundfont
echo "corpus dependencies ready"
