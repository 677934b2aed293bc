#!/usr/bin/env bash
# run.sh: runs every bench/*.sh benchmark against the given build directory.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
shopt -s nullglob
ran=0
for b in bench/bench-*.sh; do
    echo "== $b"
    "$b" "$build"
    ran=$((ran + 1))
done
[[ $ran -gt 0 ]] || echo "no benchmarks yet"
