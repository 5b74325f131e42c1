#!/usr/bin/env bash
# Sets up mucon on a fresh Debian machine with Python 3.11: torch (the CPU build, unless a torch is
# already installed: GPU users install their own build first and it is kept), the soundfonts and score
# library the built-in corpus renders from, a C++ compiler for compiled training steps (trainer.compile:
# inductor builds its CPU kernels with it), and mucon itself with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q "torch==2.13.0"
bash scripts/install_corpus_deps.sh
command -v g++ >/dev/null || bash scripts/apt_install.sh g++
python3 -m pip install -q -e '.[test]'
