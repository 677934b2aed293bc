#!/usr/bin/env bash
# bench-audit.sh: whole audit catalogue on the golden fixture and live on this host, vs `lynis audit system --quick`.
# Usage: bench/bench-audit.sh [BUILD_DIR]   (goal: < 100 ms per ringil run; lynis runs once, timed)
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
ringil="$PWD/$build/ringil/ringil"
[[ -x "$ringil" ]] || { echo "bench-audit: build first ($ringil missing)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench-audit: hyperfine missing (scripts/deps.sh bench)" >&2; exit 1; }

work=$(mktemp -d /tmp/ringil-bench-audit.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The same golden prod root the integration tests use.
/usr/bin/python3 - "$work" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "tests/integration")
import audit_fixture as fx
w = Path(sys.argv[1])
(w / "certs").mkdir()
(w / "root").mkdir()
fx.build_golden(w / "root", fx.Certs(w / "certs"))
PY

"$ringil" audit --root "$work/root" >/dev/null   # must be compliant (exit 0), else set -e stops here
checks=$("$ringil" audit --list | wc -l)
echo "catalogue: $checks checks"

hyperfine --warmup 3 --runs 30 -N -i \
    --export-json "$work/ringil.json" \
    -n "ringil audit --root fixture (text)" "$ringil audit --root $work/root" \
    -n "ringil audit --root fixture (sarif)" "$ringil audit --root $work/root --format sarif" \
    -n "ringil audit live (this host)" "$ringil audit"

if command -v lynis >/dev/null; then
    # Lynis cannot take a root; it audits this host. One run is enough to compare orders of magnitude.
    hyperfine --runs 1 -i --export-json "$work/lynis.json" \
        -n "lynis audit system --quick" \
        "lynis audit system --quick --no-colors --logfile $work/lynis.log --report-file $work/lynis.dat >/dev/null 2>&1"
    lynis_ms=$(/usr/bin/python3 -c "import json;print(round(json.load(open('$work/lynis.json'))['results'][0]['mean']*1000))")
else
    echo "lynis not installed (apt-get install lynis): skipping the comparison"
    lynis_ms=
fi

/usr/bin/python3 - "$work/ringil.json" "$lynis_ms" "$checks" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
lyn = sys.argv[2]
print(f"\nsummary ({sys.argv[3]} checks; goal < 100 ms):")
for r in res:
    ms = r["mean"] * 1000
    line = f"  {r['command']:<40} {ms:8.2f} ms ± {r['stddev'] * 1000:.2f}"
    if lyn:
        line += f"   ({int(lyn) / ms:,.0f}x faster than lynis --quick at {int(lyn)} ms)"
    print(line + ("" if ms < 100 else "   ABOVE GOAL"))
PY
