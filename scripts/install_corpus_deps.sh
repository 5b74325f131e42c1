#!/usr/bin/env bash
# Install what `mucon corpus build` needs: General MIDI soundfonts (Debian packages), music21
# (its bundled score corpus) and tinysoundfont (the synthesiser). Idempotent and non-interactive:
# run it again and it only checks.
set -euo pipefail

SF_PACKAGES="fluid-soundfont-gm musescore-general-soundfont-small timgm6mb-soundfont"
PYTHON="${PYTHON:-python3}"

bash "$(dirname "$0")/apt_install.sh" $SF_PACKAGES

"$PYTHON" -c "import music21" 2>/dev/null || "$PYTHON" -m pip install music21
# --no-deps: tinysoundfont's wheel declares nothing it needs at run time beyond numpy, which mucon has.
"$PYTHON" -c "import tinysoundfont" 2>/dev/null || "$PYTHON" -m pip install --no-deps tinysoundfont
echo "corpus dependencies ready"
