#!/usr/bin/env bash
# FID with 180 generated images a set (docs/results.md), each beside its real-half calibration,
# for one finished demo run: BlendGAN natural / reference- / latent-guided, the natural StyleGAN2
# BlendGAN started from, and pSp reconstructions. About 9 minutes on 2 CPU threads.
#
#   bash scripts/demo_fid180.sh [OUTPUT_DIR [STYLEGAN2_CHECKPOINT]]
#
# OUTPUT_DIR: the run's output_dir (default results); STYLEGAN2_CHECKPOINT: default the shipped
# pretrained/stylegan2-demo-32px.pt. Writes OUTPUT_DIR/eval/fid180/{blendgan,stylegan2,psp}.json
# and prints one line a comparison.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
run=$(realpath "${1:-results}")
base=${2:-pretrained/stylegan2-demo-32px.pt}
cd "$(dirname "$0")/.."
out="$run/eval/fid180"
mkdir -p "$out"
common=(--style-lmdb "$run/data/style/lmdb" --face-lmdb "$run/data/face/lmdb" --n 180
        --indicator 6 --truncation 1.0 --weights auto --cache-dir "$run/eval/weights"
        --real-cache "$out/cache" --kid-subsets 100 --seed 0 --threads 2 --no-progress)
encoder=(--style-encoder "$run/models/style_encoder/style_encoder.pt")
python -m workflow.evaluate.fid --blendgan "$run/models/blendgan/blendgan.pt" "${encoder[@]}" \
    "${common[@]}" --out "$out/blendgan.json"
python -m workflow.evaluate.fid --blendgan "$base" "${encoder[@]}" "${common[@]}" \
    --out "$out/stylegan2.json"
python scripts/psp_recon_fid.py --blendgan "$run/models/blendgan/blendgan.pt" \
    --psp "$run/models/psp/psp.pt" --face-lmdb "$run/data/face/lmdb" --weights auto \
    --cache-dir "$run/eval/weights" --seed 0 --out "$out/psp.json"
python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = [("BlendGAN " + k, v) for k, v in json.load(open(f"{out}/blendgan.json"))["results"].items()]
rows.append(("StyleGAN2 natural", json.load(open(f"{out}/stylegan2.json"))["results"]["natural"]))
rows.append(("pSp reconstructions", json.load(open(f"{out}/psp.json"))["results"]))
for name, r in rows:
    print(f"{name:28s} n {r['n_fake']:4d}  FID {r['fid']:6.1f}  calibration {r['fid_calibration']:5.1f}"
          f"  ratio {r['fid_ratio']:.2f}")
PY
