#!/usr/bin/env python3
"""Checks the dashboard and the alert rules against the code: valid JSON/YAML shapes, and every
metric they query is one the services really export (so a renamed metric cannot leave a silent
panel or an alert that never fires). promtool checks and unit-tests the rules themselves."""
import json
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
code = "\n".join(p.read_text() for p in root.glob("*/src/**/*.rs"))
exported = set(re.findall(r'"(btc_[a-z0-9_]+)"', code))
# Histograms expose _bucket, _sum and _count series.
series = exported | {f"{m}_{s}" for m in exported for s in ("bucket", "sum", "count")}

failures = []
dashboard = json.loads((root / "Helm/files/grafana-dashboard.json").read_text())
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
if not exprs:
    failures.append("dashboard has no queries")
ids = [p["id"] for p in dashboard["panels"]]
if len(ids) != len(set(ids)):
    failures.append("dashboard panel ids are not unique")
rules = (root / "Helm/files/prometheus-rules.yaml").read_text()
exprs += re.findall(r"expr: (.+(?:\n {12,}.+)*)", rules)

used = set()
for expr in exprs:
    used |= set(re.findall(r"\b(btc_[a-z0-9_]+)", expr))
for name in sorted(used - series):
    failures.append(f"queried but not exported by any service: {name}")
for name in sorted(n for n in exported if n not in {u.removesuffix("_bucket") for u in used} and n not in used):
    print(f"note: exported but not on the dashboard or in a rule: {name}")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"observability: {len(exprs)} queries use {len(used)} metrics, all exported by the services")
