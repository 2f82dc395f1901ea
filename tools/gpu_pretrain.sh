#!/usr/bin/env bash
# Unattended Light Flow pretraining on one GPU machine in about 10 minutes, on the project's own synthetic data
# rendered on the GPU (configs/lightflow/lightflow_w1.0_1xb32-6k_synthetic-gpu.py: bf16 autocast, channels-last).
#
#   bash tools/gpu_pretrain.sh OUT_DIR [WIDTH_MULT]
#
# 1. a smoke run (SMOKE_ITERS iterations, ~1 min) checks the whole path and measures seconds per iteration;
# 2. the real run gets as many iterations as fit in TRAIN_SECONDS (cosine schedule over exactly those);
# 3. the final checkpoint is exported to OUT_DIR/lightflow_w<WIDTH>_synthetic.pth (slim, fp32) with its sha256.
# OUT_DIR receives smoke/ and train/ (mmengine logs + checkpoints), summary.md (pairs/s, iterations, wall time) and
# the exported weights. Works with the machine's own python (torch + CUDA, torchvision, scikit-image, opencv); when
# mmengine is missing it is installed with no package index from the wheels in LIGHTFLOW_WHEELS (default ./.whl:
# onedl-mmengine and its pure-Python needs, e.g. addict, yapf, termcolor). Without CUDA it runs the same steps in
# fp32 on the CPU (slowly; the test suite does this at a tiny size through EXTRA_OPTS).
#
# Environment: PYTHON (python3), SMOKE_ITERS (100), TRAIN_SECONDS (480), BATCH (32), EXTRA_OPTS (more
# --cfg-options, e.g. "model.data_preprocessor.generator.size=(64,64)").
set -euo pipefail
out="${1:?usage: bash tools/gpu_pretrain.sh OUT_DIR [WIDTH_MULT]}"
width="${2:-1.0}"
py="${PYTHON:-python3}"
smoke="${SMOKE_ITERS:-100}"
budget="${TRAIN_SECONDS:-480}"
batch="${BATCH:-32}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cfg="$root/configs/lightflow/lightflow_w1.0_1xb32-6k_synthetic-gpu.py"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$(date +%s)

if ! "$py" -c 'import mmengine' 2>/dev/null; then
    wheels="${LIGHTFLOW_WHEELS:-$root/.whl}"
    ls "$wheels"/*.whl >/dev/null 2>&1 || { echo "error: mmengine is not installed and no wheels in $wheels" >&2; exit 2; }
    echo "[gpu_pretrain] installing mmengine from $wheels (no index)"
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$out/site" "$wheels"/*.whl
    export PYTHONPATH="$PYTHONPATH:$out/site"
fi
amp=()
if "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    amp=(--amp bf16)
    "$py" -c 'import torch; print("[gpu_pretrain]", torch.__version__, torch.cuda.get_device_name(0))'
else
    echo "[gpu_pretrain] no CUDA device: running the same steps on the CPU in fp32"
fi
# shellcheck disable=SC2206  # EXTRA_OPTS is a list of key=value words on purpose
extra=(${EXTRA_OPTS:-})
common=(model.width_mult="$width" train_dataloader.batch_size="$batch" "${extra[@]}")

# Seconds per iteration and pairs per second from the last logged window of an mmengine work dir.
rate() {
    "$py" - "$1" "$batch" <<'EOF'
import json, sys
from pathlib import Path
logs = sorted(Path(sys.argv[1]).glob('*/vis_data/scalars.json'))
rows = [json.loads(line) for line in logs[-1].read_text().splitlines()] if logs else []
rows = [r for r in rows if 'time' in r and 'lr' in r]  # training iterations, not validation
if not rows:
    sys.exit('error: no timed iterations in the log of ' + sys.argv[1])
t = rows[-1]['time']
print(f"{t:.5f} {int(sys.argv[2]) / t:.1f} {rows[-1].get('data_time', float('nan')):.5f}")
EOF
}

echo "[gpu_pretrain] smoke run: $smoke iterations"
"$py" "$root/tools/train_flow.py" "$cfg" --work-dir "$out/smoke" "${amp[@]}" --cfg-options \
    train_cfg.max_iters="$smoke" train_cfg.val_interval=1000000 default_hooks.logger.interval=$(( smoke / 4 > 0 ? smoke / 4 : 1 )) \
    default_hooks.checkpoint.interval=1000000 param_scheduler.1.T_max="$smoke" param_scheduler.1.end="$smoke" \
    "${common[@]}" 2>&1 | tee "$out/smoke.log"
read -r sec_per_iter pairs_per_s data_time < <(rate "$out/smoke")
iters=$("$py" -c "print(max(int($budget / $sec_per_iter), 10))")
echo "[gpu_pretrain] smoke: $sec_per_iter s/iteration ($pairs_per_s pairs/s); training $iters iterations"

"$py" "$root/tools/train_flow.py" "$cfg" --work-dir "$out/train" "${amp[@]}" --cfg-options \
    train_cfg.max_iters="$iters" train_cfg.val_interval="$iters" default_hooks.checkpoint.interval="$iters" \
    default_hooks.logger.interval=$(( iters / 10 > 50 ? 50 : (iters / 10 > 0 ? iters / 10 : 1) )) \
    param_scheduler.1.T_max="$iters" param_scheduler.1.end="$iters" "${common[@]}" 2>&1 | tee "$out/train.log"
read -r sec_per_iter pairs_per_s data_time < <(rate "$out/train")

name="lightflow_w${width}_synthetic"
"$py" "$root/tools/export_pretrained.py" "$out/train/iter_$iters.pth" "$out/$name.pth" --name "$name" \
    --summary "GPU-pretrained on synthetic pairs: $iters iterations x batch $batch" | tee "$out/export.log"
end=$(date +%s)
{
    echo "| width | iterations | batch | pairs seen | s/iteration | pairs/s | data_time s | wall s |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $width | $iters | $batch | $(( iters * batch )) | $sec_per_iter | $pairs_per_s | $data_time | $(( end - start )) |"
} > "$out/summary.md"
cat "$out/summary.md"
