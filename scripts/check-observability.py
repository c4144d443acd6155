#!/usr/bin/env python3
# Why: promtool checks the rules' syntax, not that each metric they and the dashboard query is one the services export, nor that each alert has its runbook section.
"""Checks the dashboard and the alert rules against the code: valid JSON/YAML shapes, and every
metric they query is one the services really export (so a renamed metric cannot leave a silent
panel or an alert that never fires); and every alert against its runbook: a `runbook_url` of
`<the chart's default runbookBaseUrl>#<alert in lower case>` and that section in the README's
"Runbooks" (and no section for an alert that is gone). promtool checks and unit-tests the rules
themselves."""
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

# Runbooks. (Plain text parsing, like the rest: no YAML library needed.)
base = re.search(r"^    runbookBaseUrl: (\S+)$", (root / "Helm/values.yaml").read_text(), re.M)
if not base:
    failures.append("Helm/values.yaml: metrics.prometheusRule.runbookBaseUrl not found")
readme = (root / "README.md").read_text()
runbooks = readme.split("\n## Runbooks\n", 1)
if len(runbooks) != 2:
    failures.append('README.md has no "## Runbooks" section')
sections = set(re.findall(r"^### (\S+)$", runbooks[-1].split("\n## ", 1)[0], re.M)) if len(runbooks) == 2 else set()
alerts = {}
for block in re.split(r"^ *- alert: ", rules, flags=re.M)[1:]:
    name = block.split(None, 1)[0]
    url = re.search(r'^ +runbook_url: "?([^"\n]+)"?$', block, re.M)
    alerts[name] = url.group(1) if url else None
for name, url in sorted(alerts.items()):
    want = f"{base.group(1) if base else '<base>'}#{name.lower()}"
    if url != want:
        failures.append(f"alert {name}: runbook_url is {url!r}, want {want!r}")
    if name not in sections:
        failures.append(f"alert {name}: no '### {name}' section under README.md's '## Runbooks'")
for name in sorted(sections - set(alerts)):
    failures.append(f"README.md runbook '### {name}' names no alert of the rules")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"observability: {len(exprs)} queries use {len(used)} metrics, all exported by the services; "
      f"{len(alerts)} alerts, each with its runbook")
