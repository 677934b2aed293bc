#!/usr/bin/python3
"""summarize.py: adds up the results of make check into one last line, 'N passed, N failed'.

Inputs, told apart by their content, not their names:
- JUnit XML (meson's testlog.junit.xml, pytest's --junitxml, check.sh's one-case files): every
  <testcase> is a pass, a failure (<failure>/<error>) or a skip (<skipped>).
- meson's testlog.json (one JSON object a line, each with "name" and "result"): a test binary whose
  result is not OK/SKIP/EXPECTEDFAIL is a failure, even if its JUnit record lists only the cases that
  passed before it crashed; one that its JUnit record already counts as failed is not counted twice.
- the VM suite's per-boot timings (a JSON document with "boots", tests/vm/conftest.py) and the loader
  evidence (vm-loaders.json): not results; the timings are summed up in one line, the rest ignored.
A file that is none of these (unreadable, truncated, garbage) counts as a failure: results that
cannot be read are never taken for success."""
import json
import sys
import xml.etree.ElementTree as ET

OK_RESULTS = ("OK", "SKIP", "EXPECTEDFAIL")


def read_json(path):
    """('meson', [records]) for a meson test log, ('doc', object) for one JSON document."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        first = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        first = None
    if isinstance(first, dict) and "name" in first and "result" in first:
        # A meson log: every line must be a record (a cut-off last line is a broken log, not a pass).
        return "meson", [json.loads(line) for line in lines]
    return "doc", json.loads(text)


def main(paths):
    passed = failed = skipped = 0
    failures, skips, notes = [], [], []
    failed_suites = set()     # JUnit suites/classnames with a failure (meson names them "<project>.<test>")
    meson_logs = []

    for path in paths:
        if path.endswith(".json"):
            try:
                kind, data = read_json(path)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, IndexError) as e:
                failed += 1
                failures.append(f"{path}: unreadable results ({e})")
                continue
            if kind == "meson":
                meson_logs.append((path, data))
            elif isinstance(data, dict) and isinstance(data.get("boots"), list):
                boots = [b for b in data["boots"] if isinstance(b, dict)]
                secs = [float(b.get("seconds", 0)) for b in boots]
                load = data.get("load_average")
                notes.append(f"VM boots: {len(boots)}, {sum(secs):.0f} s of boots in all, longest {max(secs, default=0):.0f} s"
                             + (f" (load average at the end {load[0]:.1f})" if isinstance(load, list) and load else ""))
            continue   # other JSON documents (the loader evidence) are not results
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            failed += 1
            failures.append(f"{path}: unreadable results ({e})")
            continue
        for suite in root.iter("testsuite"):
            for case in suite.iter("testcase"):
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                if case.find("failure") is not None or case.find("error") is not None:
                    failed += 1
                    failures.append(name)
                    failed_suites.update({suite.get("name", ""), case.get("classname", "")})
                elif case.find("skipped") is not None:
                    skipped += 1
                    skips.append(f"{name}: {case.find('skipped').get('message', '')}")
                else:
                    passed += 1

    for path, records in meson_logs:
        for t in records:
            if t.get("result") in OK_RESULTS:
                continue
            name = str(t.get("name"))
            if any(s == name or s.endswith("." + name) for s in failed_suites):
                continue   # its JUnit record has the failure already
            failed += 1
            failures.append(f"{name}: {t.get('result')}")

    for n in notes:
        print(n)
    for s in skips:
        print(f"SKIPPED: {s}")
    for f in failures:
        print(f"FAILED: {f}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
