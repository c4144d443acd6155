# Why: what no installed tool checks: that kubernetes-validate saw every object, that checkov fails exactly the justified exceptions, and files promtool and nats-server can check; plus the render helper of the tests.
"""Checks of the rendered chart that scripts/check-helm.sh runs, and the render helper of test_rendered.py.

Run with a Python that has PyYAML (.tools/kv-current/bin/python: it comes with kubernetes-validate).
Subcommands:

  kv-report [--expect N] FILE...    judge kubernetes-validate output: every object "passed", no ERROR,
                                    no WARN except "Couldn't find schema" for the CRD allowlist
                                    (Helm/tests/check-crds.cjs checks those against their CRDs)
  prometheus-rules RENDERED.yaml O  write the PrometheusRule's spec (a rule file) to O, for promtool
  nats-conf NATS_VALUES OUT         the nats-server settings of Helm/nats-values.yaml as a nats.conf
  checkov-exceptions EXC CHECKOV.json RENDER_DIR...
                                    checkov's JSON on the renders (helm template --output-dir, one
                                    directory per render, named after it) must fail exactly the
                                    entries of EXC (Helm/checkov-exceptions.yaml) that apply to them:
                                    nothing unexcepted, nothing stale, and pass some check
"""

from __future__ import annotations

import atexit
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - a setup problem, said plainly
    sys.exit(
        "PyYAML is missing: run scripts/install-k8s-tools.sh and use .tools/kv-current/bin/python"
    )

CHART = Path(__file__).resolve().parents[1]
REPO = CHART.parent
HELM = os.environ.get("HELM", str(REPO / ".tools" / "bin" / "helm"))

# CRDs (prometheus-operator, cert-manager) that kubernetes-validate has no schema for, with their
# API version; Helm/tests/check-crds.cjs checks them instead.
CRD_KINDS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "Certificate": "cert-manager.io/v1",
    "Issuer": "cert-manager.io/v1",
}

NAMESPACED_KINDS = {
    "Certificate", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Issuer", "Job",
    "NetworkPolicy", "Pod", "PodDisruptionBudget", "PrometheusRule", "Secret", "Service",
    "ServiceAccount", "ServiceMonitor",
}


def render(*args: str, release: str = "btc-price", namespace: str = "btc") -> list[dict]:
    """`helm template` the chart with extra args (e.g. "-f", "values-production.yaml"); the objects."""
    out = subprocess.run(
        [HELM, "template", release, str(CHART), "-n", namespace, *args],
        check=True, capture_output=True, text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


# The digest the tests pin with the release step (made up: no image has it).
RELEASE_TEST_DIGEST = "sha256:" + hashlib.sha256(b"release-step-test").hexdigest()


def production_values() -> Path:
    """values-production.yaml as deployed: after the release step (scripts/pin-image-digest.py) with
    RELEASE_TEST_DIGEST; the committed file has no digest until the first release."""
    tmp = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, tmp, True)
    path = tmp / "values-production.yaml"
    shutil.copy(CHART / "values-production.yaml", path)
    pin = [sys.executable, str(REPO / "scripts" / "pin-image-digest.py"), RELEASE_TEST_DIGEST, "--tag", "0.0.0-test"]
    subprocess.run([*pin, str(path)], check=True, capture_output=True)
    return path


def load_all(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --- kubernetes-validate -----------------------------------------------------------------------------

KV_PASSED = re.compile(r"^INFO .* passed for resource (\S+) against version (\S+)$")
KV_NO_SCHEMA = re.compile(r"^WARN .* Couldn't find schema for kind (\S+) with api version (\S+) ")


def kv_report(args: list[str]) -> int:
    expect = None
    if args and args[0] == "--expect":
        expect, args = int(args[1]), args[2:]
    paths = args
    problems, passed, crds = [], 0, 0
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            if KV_PASSED.match(line):
                passed += 1
            elif (m := KV_NO_SCHEMA.match(line)) and CRD_KINDS.get(m.group(1)) == m.group(2):
                crds += 1
            else:
                problems.append(f"{path}: {line}")
    if expect is not None and passed + crds != expect:
        problems.append(f"{expect} objects rendered, but {passed + crds} reported")
    for p in problems:
        print(f"  FAIL {p}")
    print(f"  kubernetes-validate: {passed} objects passed, {crds} allowlisted CRD objects, "
          f"{len(problems)} problems")
    return 1 if problems or passed == 0 else 0


def prometheus_rules(path: str, out: str) -> int:
    rules = [d for d in load_all(path) if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        print(f"  FAIL expected one PrometheusRule in {path}, found {len(rules)}")
        return 1
    Path(out).write_text(yaml.safe_dump(rules[0]["spec"], sort_keys=False), encoding="utf-8")
    return 0


# --- checkov exceptions -----------------------------------------------------------------------------

def load_exceptions(path: str) -> list[dict]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = data.get("exceptions") or []
    for i, e in enumerate(entries):
        for key in ("id", "reason", "kinds"):
            if not e.get(key):
                raise SystemExit(f"{path}: exception #{i + 1} has no '{key}'")
        if not re.fullmatch(r"CKV2?_K8S_[0-9]+", e["id"]):
            raise SystemExit(f"{path}: '{e['id']}' is not a checkov Kubernetes check id")
        if len(e["reason"].split()) < 6:
            raise SystemExit(f"{path}: the reason for {e['id']} is too short to justify anything")
    return entries


def applies(e: dict, render_name: str, doc: dict) -> bool:
    if e.get("renders") and render_name not in e["renders"]:
        return False
    if doc.get("kind") not in e["kinds"]:
        return False
    comps = e.get("components")
    comp = (doc.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/component", "")
    return not comps or any(fnmatch.fnmatch(comp, c) for c in comps)


def resource_id(doc: dict) -> str:
    """checkov's name of a Kubernetes object: Kind.namespace.name."""
    meta = doc.get("metadata", {})
    return f"{doc.get('kind')}.{meta.get('namespace', 'default')}.{meta.get('name')}"


def _reports(path: str) -> list[dict]:
    p = Path(path)
    if p.is_dir():  # checkov 3 writes <path>/results_json.json for a single output, <path> for several
        p = p / "results_json.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    reports = data if isinstance(data, list) else [data]
    return [r for r in reports if r.get("check_type") in (None, "kubernetes")]


def checkov_exceptions(exc_path: str, report_path: str, *render_dirs: str) -> int:
    """checkov's failures on the renders must be exactly the exceptions that apply to them."""
    entries = load_exceptions(exc_path)
    expected = {}  # (render, resource, check) -> the exception's reason
    for directory in map(Path, render_dirs):
        for f in sorted(directory.rglob("*.yaml")):
            for doc in load_all(f):
                for e in entries:
                    if applies(e, directory.name, doc):
                        expected[(directory.name, resource_id(doc), e["id"])] = e["reason"]
    failed, names, passed = set(), {}, 0
    for r in _reports(report_path):
        passed += r.get("summary", {}).get("passed", 0)
        for c in r.get("results", {}).get("failed_checks", []):
            key = (c.get("file_path", "").strip("/").split("/", 1)[0], c["resource"], c["check_id"])
            failed.add(key)
            names[key] = c.get("check_name", "")
    rc = 0
    for key in sorted(failed - expected.keys()):
        print(f"  FAIL checkov {key[2]} on {key[1]} (render {key[0]}): {names[key]}")
        rc = 1
    if failed - expected.keys():
        print(f"  -> fix the chart, or add a justified entry to {exc_path}")
    for key in sorted(expected.keys() - failed):
        print(f"  FAIL stale exception {key[2]} on {key[1]} (render {key[0]}): the check passes there; "
              f"narrow or remove the entry in {exc_path}")
        rc = 1
    if passed == 0:
        print("  FAIL checkov passed no check at all: it did not run on the rendered objects")
        rc = 1
    ids = ", ".join(sorted({key[2] for key in expected})) or "none"
    print(f"  checkov: {passed} passed, {len(failed)} failed, each an exception of {exc_path} ({ids})")
    return rc


# --- nats-values.yaml ------------------------------------------------------------------------------

def nats_conf(values_path: str, out: str) -> int:
    """The server settings of nats-values.yaml (config.merge, jetstream merge) as a nats.conf.

    NATS config is a superset of JSON; `<< $VAR >>` becomes a bare `$VAR` (an environment variable), as
    the NATS chart renders it. For `nats-server -t` and for permission tests against a real server.
    """
    v = yaml.safe_load(Path(values_path).read_text(encoding="utf-8"))
    conf = dict(v["config"].get("merge") or {})
    js = v["config"].get("jetstream") or {}
    if js.get("enabled"):
        conf["jetstream"] = dict(js.get("merge") or {})
    text = json.dumps(conf, indent=2)
    text = re.sub(r'"<<\s+(.*?)\s+>>"', r"\1", text)
    Path(out).write_text(text + "\n", encoding="utf-8")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "kv-report":
        return kv_report(args)
    if cmd == "prometheus-rules":
        return prometheus_rules(args[0], args[1])
    if cmd == "nats-conf":
        return nats_conf(args[0], args[1])
    if cmd == "checkov-exceptions":
        return checkov_exceptions(*args)
    print(f"unknown subcommand {cmd}\n{__doc__}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
