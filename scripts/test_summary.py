#!/usr/bin/env python3
"""test_summary.py — what `make test` prints after ctest: every skipped test and skipped unit case
with its reason, then one line of counts.

    python3 scripts/test_summary.py BUILD_DIR

Reads BUILD_DIR/Testing/ctest.xml (ctest --output-junit: each test's status) and
BUILD_DIR/Testing/Temporary/LastTest.log (each test's whole output). A test is skipped when ctest
says so (exit 77 = SKIP_RETURN_CODE); its reason is its first output line. A unit case is skipped
when cmocka prints "[  SKIPPED ] case"; its reason is the line the case printed before that.
Exit status 0 always: ctest's own status decides pass or fail.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET


def outputs(log_path):
    """{test name: its output} from LastTest.log."""
    out = {}
    if not os.path.exists(log_path):
        return out
    text = open(log_path, encoding="utf-8", errors="replace").read()
    for m in re.finditer(r'^\d+/\d+ Test: (\S+)\n.*?^Output:\n-+\n(.*?)^<end of output>', text, re.S | re.M):
        out[m.group(1)] = m.group(2)
    return out


def skipped_cases(output):
    """[(case, reason)] of cmocka's skipped cases in one test's output."""
    cases, last = [], ""
    for line in output.splitlines():
        if re.match(r'\[=+\] \d+ test\(s\) run', line):
            last = ""   # cmocka's closing summary lists the skipped cases again: not new ones
            continue
        if line.startswith("[  SKIPPED ] ") and "test(s), listed below" in line:
            break
        m = re.match(r'\[\s*SKIPPED\s*\] (\S+)', line)
        if m:
            cases.append((m.group(1), last))
        elif line.startswith("[ RUN"):
            last = ""
        elif line.strip() and not line.startswith("["):
            last = line.strip()
    return cases


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    junit = os.path.join(build, "Testing", "ctest.xml")
    if not os.path.exists(junit):
        print("test summary: %s is missing (ctest --output-junit Testing/ctest.xml makes it)" % junit)
        return 0
    logs = outputs(os.path.join(build, "Testing", "Temporary", "LastTest.log"))
    ran, failed, skipped = [], [], []
    for tc in ET.parse(junit).getroot().iter("testcase"):
        name, status = tc.get("name"), tc.get("status")
        if status == "notrun" or tc.find("skipped") is not None:
            first = (logs.get(name) or (tc.findtext("system-out") or "")).strip().splitlines()
            skipped.append((name, first[0] if first else "(no reason printed)"))
        else:
            ran.append(name)
            if status == "fail" or tc.find("failure") is not None:
                failed.append(name)
    case_lines, n_cases = [], 0
    for name in ran:
        cases = skipped_cases(logs.get(name, ""))
        n_cases += len(cases)
        by_reason = {}
        for case, reason in cases:
            by_reason.setdefault(reason or "(no reason printed)", []).append(case)
        for reason, names in by_reason.items():
            shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            case_lines.append("  %s: %d case%s skipped (%s): %s" % (name, len(names), "" if len(names) == 1 else "s", shown, reason))
    if skipped or case_lines:
        print("\nskipped:")
        for name, reason in skipped:
            print("  %s: the whole test: %s" % (name, reason))
        for line in case_lines:
            print(line)
    print("\ntests: %d ran (%d passed, %d failed), %d skipped; unit cases skipped inside tests that ran: %d"
          % (len(ran), len(ran) - len(failed), len(failed), len(skipped), n_cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
