#!/usr/bin/env bash
# The GPU throughput measurements as one prepared run of under 10 minutes (docs/performance.md):
# most important first, each step under its own time limit, so a cut-off run still returns what
# finished. Results (JSON + logs) go to $OUT (default ./device_check).
#
#   bash scripts/device_check.sh            # on a machine with one CUDA GPU
#
# Steps and limits (seconds): BlendGAN 1024/8, fp32 eager vs bf16 + channels_last (170);
# style encoder 256/256, the same pair (80); LMDB loader at 1024/8 on all CPU cores (50); the
# 300-step numerics check, bf16 + channels_last vs fp32 at 32 px (100); BlendGAN 1024/8 with
# bf16 + channels_last + torch.compile (170). Wheels in .whl/ (packages the machine lacks,
# e.g. lmdb) are installed to /tmp/site first.
set -u
OUT=${OUT:-device_check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch, platform; print('torch', torch.__version__, 'python',
platform.python_version(), 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
    nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step() {  # step NAME LIMIT COMMAND...: run, keep its output in the log, report the exit status
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s) $(date +%T)" | tee -a "$OUT/log.txt"
    timeout "$limit" "$@" 2>&1 | grep -v -e "UserWarning" -e "warnings.warn" >> "$OUT/log.txt"
    echo "== $name: exit ${PIPESTATUS[0]} $(date +%T)" | tee -a "$OUT/log.txt"
}

BENCH=(python3 scripts/bench_throughput.py --iters 16 --warmup 4)
step blendgan 170 "${BENCH[@]}" --which blendgan --compare --precision bf16 --channels-last \
    --out "$OUT/blendgan.json"
step style_encoder 80 "${BENCH[@]}" --which style_encoder --compare --precision bf16 \
    --channels-last --out "$OUT/style_encoder.json"
step loader 50 "${BENCH[@]}" --which loader --out "$OUT/loader.json"
step numerics 100 python3 scripts/check_numerics.py --steps 300 --resolution 32 \
    --out "$OUT/numerics.json"
step blendgan_compile 170 "${BENCH[@]}" --which blendgan --precision bf16 --channels-last \
    --compile --out "$OUT/blendgan_compile.json"
grep -E "img/s|OK:|FAIL" "$OUT/log.txt"
