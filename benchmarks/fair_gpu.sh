#!/usr/bin/env bash
# The fair AutoAttack comparison (python -m generalist_bench.bench_fair) on a CUDA GPU, unchanged but for the
# device, larger n and batch sizes that a GPU wants. On a GPU the CPU-only parts of our engines switch themselves
# off (row chunks, prepacked oneDNN passes, the bf16 search of the fast engine: it runs as compact there).
# Results: benchmarks/fair_gpu/{fair.json,FAIR.md}. Usage: bash benchmarks/fair_gpu.sh [extra bench_fair options]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "fair_gpu.sh: no CUDA device here (torch.cuda.is_available() is False); nothing run" >&2
    exit 1
fi
exec python -m generalist_bench.bench_fair --device cuda --n 1000 --batch-sizes 100,250,500,1000 --repeats 2 \
    --out benchmarks/fair_gpu --note "GPU: $(python -c 'import torch; print(torch.cuda.get_device_name(0))')" "$@"
