#!/bin/bash
# The GPU checks and figures in one run, on a machine with a CUDA GPU:
#   bash benchmarks/gpu_checks.sh [LOGDIR] [MODEL]
# - the CUDA tests (train, save, load and predict every network kind on the GPU; blockwise workers on it);
# - our networks in torch fp32, torch bf16 (the product's GPU path) and ONNX Runtime's CUDA provider
#   (where onnxruntime-gpu is installed), side by side;
# - the blockwise StarDist run at 2k² and 16k² with the networks on the GPU, then on the CPU alone, same workers
#   (MODEL: a StarDist folder, e.g. from `python benchmarks/scale.py --keep-model M`; without it each run trains one).
set -o pipefail
logs=${1:-gpu-logs}
model=${2:+--model $2}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1
python -m pytest -q -p no:cacheprovider tests/core/test_cuda.py 2>&1 | tee "$logs/cuda_tests.log" | tail -5
python benchmarks/gpu_engines.py --repeats 20 --no-cpu 2>&1 | tee "$logs/engines.log"
for device in cuda cpu; do
  python benchmarks/scale.py $model --sizes 2048 16384 --workers 8 --lines scale --device $device 2>&1 \
    | tee "$logs/scale_$device.log"
done
