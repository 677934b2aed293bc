#!/usr/bin/env bash
# bench-ui.sh: the operator dashboard at 10,000 drones: drones-view page times (P95 limit 200 ms) server-side
# and in headless Chromium, the other views, the JSON API and nginx serving the same bytes as references.
# Usage: bench/bench-ui.sh [BUILD]   (loopback only; about a minute). Environment: UI_BENCH_DRONES (10000).
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/ui-bench.py "$build" --drones "${UI_BENCH_DRONES:-10000}"
