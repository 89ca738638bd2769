#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and driver, and no Rust toolchain: runs a
# release binary built elsewhere (cargo build --release; copy
# target/release/gaussflow and this scripts/ folder over).
#
#   scripts/gpu_check.sh [path/to/gaussflow] [report-dir]
#
# 1. `gaussflow info` and `gaussflow verify --backend cuda` (fails the script
#    on a verify failure);
# 2. the CUDA benchmarks (`gaussflow bench --backend cuda --json`), if this
#    binary has a bench command yet;
# 3. if python3 with a CUDA PyTorch is present, the same updates as PyTorch
#    eager ops, the way diffusers' schedulers write them, at the same sizes
#    (scripts/torch_eager.py), printed as one table with the gaussflow
#    numbers beside them when the bench wrote any.
set -u
BIN=${1:-./gaussflow}
OUT=${2:-gpu-report}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
status=0

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/nvidia-smi.txt"

echo "== gaussflow info"
"$BIN" info 2>&1 | tee "$OUT/info.txt"

echo "== gaussflow verify --backend cuda"
if "$BIN" verify --help 2>/dev/null | grep -q -- "--backend"; then
    "$BIN" verify --backend cuda 2>&1 | tee "$OUT/verify.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "VERIFY FAILED"; status=1; }
else
    GAUSSFLOW_BACKEND=cuda "$BIN" verify 2>&1 | tee "$OUT/verify.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "VERIFY FAILED"; status=1; }
fi

BENCH_JSON=""
echo "== gaussflow bench --backend cuda"
if "$BIN" bench --help >/dev/null 2>&1; then
    if "$BIN" bench --backend cuda --json > "$OUT/bench.json" 2> "$OUT/bench.stderr"; then
        BENCH_JSON="$OUT/bench.json"
    else
        echo "bench --json failed (see $OUT/bench.stderr); plain run:"
        "$BIN" bench --backend cuda 2>&1 | tee "$OUT/bench.txt"
    fi
else
    echo "this binary has no bench command yet: skipped"
fi

echo "== PyTorch eager baseline"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    python3 "$HERE/torch_eager.py" ${BENCH_JSON:+--gaussflow-json "$BENCH_JSON"} | tee "$OUT/comparison.txt"
else
    echo "python3 with a CUDA PyTorch not found: skipped"
fi
exit $status
