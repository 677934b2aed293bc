#!/usr/bin/python3
"""summarize.py: adds up JUnit XML (meson, pytest) and meson testlog.json files into one
'N passed, N failed' line. A test binary that crashes counts as a failure even if its JUnit
record only lists the cases that passed before the crash."""
import json
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
failures = []
skips = []
for path in sys.argv[1:]:
    if path.endswith(".json"):
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                t = json.loads(line)
                if t.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL"):
                    failed += 1
                    failures.append(f"{t.get('name')}: {t.get('result')}")
        continue
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        failed += 1
        failures.append(f"{path}: unreadable results ({e})")
        continue
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(name)
        elif case.find("skipped") is not None:
            skipped += 1
            skips.append(f"{name}: {case.find('skipped').get('message', '')}")
        else:
            passed += 1

for s in skips:
    print(f"SKIPPED: {s}")
for f in failures:
    print(f"FAILED: {f}")
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed or passed == 0 else 0)
