#!/usr/bin/env bash
# fuzz.sh: builds the fuzz targets with clang's libFuzzer (+ASan/UBSan) and runs each for N seconds,
# starting from its committed corpus. New inputs go to a scratch dir, never into the repository.
# Usage: scripts/fuzz.sh [SECONDS] [RESULTS-DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
results=${2:-build-results}
mkdir -p "$results"
dir=build-fuzz

# A build that fails is a failed test too (make check counts the XML), not a silent skip.
build_failed() {
    tail -40 "$1"
    printf '<testsuite name="libfuzzer"><testcase classname="libfuzzer" name="build"><failure message="%s"/></testcase></testsuite>\n' \
        "the libFuzzer build failed; see $1" >"$results/libfuzzer-build.xml"
    exit 1
}
if [[ ! -f $dir/build.ninja ]]; then
    CC=clang meson setup "$dir" -Dfuzzing=true -Dtests=disabled -Dhardening=false \
        -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true >"$results/fuzz-setup.log" 2>&1 ||
        build_failed "$results/fuzz-setup.log"
fi
ninja -C "$dir" >"$results/fuzz-build.log" 2>&1 || build_failed "$results/fuzz-build.log"
printf '<testsuite name="libfuzzer"><testcase classname="libfuzzer" name="build"/></testsuite>\n' >"$results/libfuzzer-build.xml"

rc_all=0
for exe in "$dir"/fuzz/fuzz-*; do
    [[ -x $exe && ! -d $exe ]] || continue
    name=${exe##*/fuzz-}
    scratch=$(mktemp -d)
    echo "   fuzz-$name: ${secs}s"
    if "$exe" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=0 \
        "$scratch" "fuzz/corpus/$name" >"$results/fuzz-$name.log" 2>&1; then
        body=""
    else
        tail -30 "$results/fuzz-$name.log"
        body="<failure message=\"libFuzzer found a crash; see $results/fuzz-$name.log\"/>"
        rc_all=1
    fi
    printf '<testsuite name="libfuzzer"><testcase classname="libfuzzer" name="%s">%s</testcase></testsuite>\n' \
        "$name" "$body" >"$results/libfuzzer-$name.xml"
    rm -rf "$scratch"
done
exit $rc_all
