#!/usr/bin/env bash
# The demo's natural StyleGAN2 at 64 px on one CUDA GPU, as one prepared run of under 10 minutes:
# train on the demo face set for a fixed image budget, ship the final file, then its 180-sample
# FID beside the real-half calibration (the protocol of scripts/demo_fid180.sh, at 64 px).
#
#   OUT=dir IMAGES=400000 bash scripts/demo_gpu64.sh FACE_LMDB STYLE_LMDB
#
# FACE_LMDB / STYLE_LMDB: the demo's packed sets (snakemake --cores 2 results/data/face/lmdb
# results/data/style/lmdb builds them; they hold 64 px). IMAGES: training images (default
# 400,000); TRAIN_LIMIT: seconds for the training step (default 420), so that a slow GPU still
# returns its log and samples; N: FID samples a set (default 180). Results:
# $OUT/{train.log,stats.jsonl,release.json,fid.json,samples/}.
set -u
case "${1:-}" in -h|--help|"") sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
[ $# -eq 2 ] || { echo "usage: bash scripts/demo_gpu64.sh FACE_LMDB STYLE_LMDB (see --help)" >&2; exit 2; }
for set in "$1" "$2"; do
    [ -f "$set/data.mdb" ] || { echo "$set: not an LMDB folder (no data.mdb)" >&2; exit 2; }
done
face=$(realpath "$1"); style=$(realpath "$2")
OUT=$(realpath -m "${OUT:-gpu64}")
IMAGES=${IMAGES:-400000}
TRAIN_LIMIT=${TRAIN_LIMIT:-420}
N=${N:-180}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
run="$OUT/run"

# 64 px: channel_base 1024 gives 32 channels at 64 px, 64 at 32 px and 128 from 16 px down (the
# demo's 32 px table shifted up one block); batch 32; R1 0.2 = the demo's 0.05 x 4, as gamma
# grows with the square of the resolution (StyleGAN2-ADA's heuristic).
python3 -c "import sys, yaml; yaml.safe_dump(yaml.safe_load(open('config.yaml'))['stylegan2'],
    open(sys.argv[1], 'w'))" "$OUT/stylegan2.yaml" || exit 1
timeout "$TRAIN_LIMIT" python3 -m models.train.stylegan2 --config "$OUT/stylegan2.yaml" --data "$face" \
    --out "$run" --final "$run/final.pt" \
    --set resolution=64 --set channel_base=1024 --set channel_max=128 --set r1=0.2 \
    --set loop.batch=32 --set loop.total_images="$IMAGES" --set loop.log_every=16000 \
    --set loop.sample_every=100000 --set loop.snapshot_every=50000 --set loop.threads=8 \
    > "$OUT/train.log" 2>&1
echo "train: exit $? (124 = cut at ${TRAIN_LIMIT}s)" | tee -a "$OUT/train.log"
cp "$run/stats.jsonl" "$OUT/" 2>/dev/null
cp -r "$run/samples" "$OUT/" 2>/dev/null
[ -f "$run/final.pt" ] || { echo "no final checkpoint: see $OUT/train.log" >&2; exit 1; }

python3 -m models.train.release "$run/final.pt" --out "$OUT/stylegan2-64px.pt" \
    --record "$OUT/release.json"
python3 -m workflow.evaluate.fid --blendgan "$OUT/stylegan2-64px.pt" --style-lmdb "$style" \
    --face-lmdb "$face" --n "$N" --truncation 1.0 --weights auto --cache-dir "$OUT/weights" \
    --kid-subsets 100 --seed 0 --no-progress --out "$OUT/fid.json"
python3 - "$OUT/fid.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]["natural"]
print(f"natural 64 px: n {r['n_fake']}  FID {r['fid']:.1f}  calibration {r['fid_calibration']:.1f}"
      f"  ratio {r['fid_ratio']:.2f}")
PY
