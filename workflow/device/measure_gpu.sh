#!/usr/bin/env bash
# The whole GPU measurement, in one call on a lent H100/H200 (after the wheel calls of
# ../shared/device/README.md, which leave snakemake and onnxruntime-gpu in /tmp/site):
#
#   bash workflow/device/measure_gpu.sh                 # on the GPU machine; results under $OUT
#   bash workflow/device/measure_gpu.sh --trial-on-cpu  # here: the same steps on a tiny model, on the CPU
#
# 1. checks that ONNX Runtime's CUDA provider runs a session (not just that it is listed), and picks the
#    hardware tag from the GPU's name (h100, h200, ...); if the provider is broken, it says so verbatim and
#    measures the PyTorch variants alone;
# 2. runs the pipeline up to the summaries (config/gpu.yaml over config/config.yaml), calibration included,
#    so the GPU's FP16 matmul peak is measured in the same run;
# 3. copies results/<tag>/ (summaries, every job's JSON, calibration, environment) and the logs to $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}:$PWD/workflow/src"
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
started=$(date +%s)
configs=(config/gpu.yaml)

if [[ "${1:-}" == "--trial-on-cpu" ]]; then
    tag=cpu
    cat > "$OUT/trial.yaml" <<'YAML'
benchmark: {batch_sizes: [1, 8], sequence_lengths: [16], min_duration_s: 0.05, calibration_matmul_sizes: [128]}
YAML
    configs=(config/gpu.yaml tests/configs/tiny.yaml "$OUT/trial.yaml")
else
    python3 -c "import torch, onnxruntime; print('torch', torch.__version__, 'onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())" | tee "$OUT/versions.txt"
    set +e
    tag=$(python3 -m inference_bench.measure.gpu_check config/config.yaml 2> >(tee "$OUT/provider.txt" >&2))
    status=$?
    set -e
    if [[ $status -eq 3 ]]; then
        echo "ONNX Runtime's CUDA provider does not run (see $OUT/provider.txt): measuring the PyTorch variants only" >&2
        printf 'hardware_tags:\n  %s: {variants: [pytorch, pytorch-fp16]}\n' "$tag" > "$OUT/pytorch-only.yaml"
        configs+=("$OUT/pytorch-only.yaml")
    elif [[ $status -ne 0 ]]; then
        exit $status
    fi
fi

python3 -m snakemake --cores "$(nproc)" summaries --configfile "${configs[@]}" --config hardware="$tag" \
    --keep-going 2>&1 | tee "$OUT/snakemake.txt" | grep -E "^\[|Error|ERROR|of .* steps" || true

mkdir -p "$OUT/results"
cp -r "results/$tag" "$OUT/results/" 2>/dev/null || echo "no results/$tag to bring back" >&2
cp -r logs "$OUT/logs" 2>/dev/null || true
echo "measure_gpu.sh: $(( $(date +%s) - started )) s; results under $OUT/results/$tag" | tee "$OUT/elapsed.txt"
