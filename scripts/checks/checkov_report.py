#!/usr/bin/env python3
"""Reads checkov's JSON report of template.yaml and judges it.

Fails on any failed check, on any suppression without a written reason, and on stale
suppressions (a `Metadata: checkov: skip` entry that no longer matches a check checkov would
fail), so that the list of accepted findings in the template stays true.

Usage: checkov_report.py REPORT.json   (run from the repository root)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from template_check import load_template  # noqa: E402  (shares the template reader)


def main(report_path: str) -> int:
    report = json.loads(Path(report_path).read_text())
    if isinstance(report, list):
        report = next((r for r in report if r.get("check_type") == "cloudformation"), report[0])
    results = report.get("results", {})
    summary = report.get("summary", {})
    problems = 0

    if summary.get("parsing_errors"):
        print(f"  FAIL checkov could not parse the template ({summary['parsing_errors']} errors)")
        problems += 1
    if not summary.get("resource_count"):
        print("  FAIL checkov scanned no resources")
        problems += 1

    for check in results.get("failed_checks", []):
        print(f"  FAIL {check['check_id']} {check['resource']}: {check['check_name']}")
        problems += 1

    skipped = {(c["check_id"], c["resource"].split(".", 1)[1]) for c in results.get("skipped_checks", [])}
    template = load_template()
    declared = 0
    for logical_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            declared += 1
            check_id = skip.get("id")
            reason = (skip.get("comment") or "").strip()
            if len(reason) < 20:
                print(f"  FAIL {logical_id} skips {check_id} without a written reason")
                problems += 1
            elif (check_id, logical_id) not in skipped:
                print(f"  FAIL {logical_id} skips {check_id}, which checkov no longer reports: remove it")
                problems += 1
            else:
                print(f"  skip {check_id} {logical_id}: {reason}")

    print(
        f"  checkov: {summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, "
        f"{summary.get('skipped', 0)} suppressed with a reason ({declared} declared) "
        f"over {summary.get('resource_count', 0)} resources"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
