#!/usr/bin/env bash
# check.sh: builds ringil and runs the whole suite twice — hardened build, then ASan+UBSan — plus a
# short libFuzzer run when clang can build one; the VM suite (tests/vm) runs once, with the hardened
# build. The last line is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test || { echo "0 passed, 1 failed"; exit 1; }

results=build-results
rm -rf "$results"
mkdir -p "$results"
py=/usr/bin/python3
extra_fail=0

junit_case() {   # junit_case FILE NAME ok|fail [MESSAGE]
    local body=""
    [[ "$3" == ok ]] || body="<failure message=\"${4:-failed}\"/>"
    printf '<testsuite name="%s"><testcase classname="check" name="%s">%s</testcase></testsuite>\n' \
        "$2" "$2" "$body" > "$1"
}

suite() {   # suite NAME BUILDDIR MESON-OPTIONS…
    local name=$1 dir=$2
    shift 2
    echo "== $name: configure and build ($dir)"
    if [[ -f "$dir/build.ninja" ]]; then
        meson setup --reconfigure "$dir" "$@" >"$results/$name-setup.log" 2>&1
    else
        meson setup "$dir" "$@" >"$results/$name-setup.log" 2>&1
    fi || { cat "$results/$name-setup.log"; junit_case "$results/$name-build.xml" "$name-configure" fail; return; }
    if ! ninja -C "$dir" >"$results/$name-build.log" 2>&1; then
        tail -50 "$results/$name-build.log"
        junit_case "$results/$name-build.xml" "$name-build" fail
        return
    fi
    junit_case "$results/$name-build.xml" "$name-build" ok

    echo "== $name: unit tests and fuzz corpora"
    meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$(nproc)" \
        >"$results/$name-meson.log" 2>&1
    grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Expected Fail|Unexpected Pass|Skipped|Timeout):' \
        "$results/$name-meson.log" | grep -vE ' OK ' || true
    cp "$dir/meson-logs/testlog.junit.xml" "$results/$name-meson.xml" 2>/dev/null &&
        cp "$dir/meson-logs/testlog.json" "$results/$name-meson.json" 2>/dev/null ||
        junit_case "$results/$name-meson.xml" "$name-meson" fail "no meson results"

    echo "== $name: integration tests against the real binaries"
    # Slow tests (a VM boot) run once, in the normal pass, not again under the sanitizers.
    local marks=()
    [[ $name == normal ]] || marks=(-m "not slow")
    # The dashboard's browser test saves a screenshot of each view here (normal pass only: it is slow).
    # One worker per core, up to four (pytest-xdist): every test has its own directories and ports, so they run side by side.
    RINGIL_SCREENSHOTS="$PWD/$results/screenshots" \
    RINGIL_BUILD="$PWD/$dir" $py -m pytest tests/integration -q -p no:cacheprovider -n "$(( $(nproc) < 4 ? $(nproc) : 4 ))" "${marks[@]}" \
        --junitxml="$results/$name-pytest.xml" 2>&1 | tail -25
    local rc=${PIPESTATUS[0]}
    if [[ $rc -ne 0 && $rc -ne 1 ]]; then   # 1 = failures (counted from XML); others = runner trouble
        junit_case "$results/$name-pytest-run.xml" "$name-pytest-run" fail "pytest exit $rc"
    fi
}

vm_suite() {   # the VM suite, once, against the normal (hardened) build: not again under the sanitizers; two
               # VMs at a time (qemu's TCG runs a guest on one core)
    echo "== normal: VM suite (qemu/OVMF, real systemd-boot 252/254/257/262, power cuts)"
    scripts/vm-loaders.sh >"$results/vm-loaders-fetch.log" 2>&1 || tail -5 "$results/vm-loaders-fetch.log"
    local t0=$SECONDS
    RINGIL_BUILD="$PWD/build" RINGIL_VM_TIMINGS="$results/vm-timings.json" RINGIL_VM_LOADERS_JSON="$results/vm-loaders.json" \
        $py -m pytest tests/vm -q -rs -p no:cacheprovider -n 2 --basetemp="$PWD/build/vm-tmp" --junitxml="$results/normal-vm.xml" 2>&1 | tail -100
    local rc=${PIPESTATUS[0]}
    echo "VM suite: $((SECONDS - t0)) s"
    if [[ $rc -ne 0 && $rc -ne 1 ]]; then
        junit_case "$results/normal-vm-run.xml" "normal-vm-run" fail "pytest exit $rc"
    fi
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# -Dtests=enabled: make check must fail, not skip, when the unit tests cannot be built.
suite normal build -Dtests=enabled
[[ -f build/ringil/ringil ]] && vm_suite
suite sanitize build-asan -Dtests=enabled -Dhardening=false -Db_sanitize=address,undefined \
    -Dc_args=-fno-sanitize-recover=all -Dbuildtype=debug

if command -v clang >/dev/null && echo 'int LLVMFuzzerTestOneInput(const char*d,unsigned long n){(void)d;(void)n;return 0;}' |
    clang -x c - -fsanitize=fuzzer -o "$results/probe-fuzzer" 2>/dev/null; then
    echo "== libFuzzer: short runs of every target"
    scripts/fuzz.sh "${FUZZ_SECONDS:-3}" "$results" || true
fi

shopt -s nullglob
$py scripts/summarize.py "$results"/*.xml "$results"/*.json
