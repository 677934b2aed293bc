#!/usr/bin/env bash
# bench-rollout.sh: the rollout scheduler for one group of 10,000 drones: rollout_evaluate() alone and a
# whole scheduler pass over the SQLite store (limit: 50 ms per pass). Usage: bench/bench-rollout.sh [BUILD]
set -euo pipefail
build=$(realpath "${1:-build}")
echo "conditions: $(nproc) cores, $(uptime | sed 's/.*load average/load average/'), $(date -u +%FT%TZ)"
"$build/bench/bench-rollout" "${ROLLOUT_BENCH_DRONES:-10000}" "${ROLLOUT_BENCH_ITERATIONS:-50}"
