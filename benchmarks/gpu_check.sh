#!/usr/bin/env bash
# What a CPU machine cannot show, run on a GPU machine from the repository root: the CUDA path of the
# augmentations and of every method's training step (the tests that skip without a GPU), batched
# augmentation against clip-by-clip, and the paper presets' steps per second in float32 and bf16.
#   bash benchmarks/gpu_check.sh            (mucon's dependencies installed, or wheels in .whl/)
set -uo pipefail
if [ -d .whl ]; then  # a machine without a package index: soundfile and soxr carried as wheels
  python3 -m pip install -q --no-deps --target /tmp/mucon-wheels .whl/*.whl
  export PYTHONPATH="/tmp/mucon-wheels:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:$PWD/tests:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
python3 -m pytest -q -p no:cacheprovider --import-mode=importlib tests/audio/test_augment.py tests/methods/test_cuda.py -k cuda
python3 benchmarks/bench_augment.py --device cuda --seconds 3
for precision in 32-true bf16-mixed; do
  python3 benchmarks/bench_train.py clmr cola mscol pemr semisupcon --device cuda --steps 10 --precision "$precision"
done
