"""Checks of the rendered chart that scripts/check-helm.sh runs, and the render helper of test_rendered.py.

Run with a Python that has PyYAML and jsonschema (.tools/kv-current/bin/python: both come with
kubernetes-validate). Subcommands:

  kv-report [--expect N] FILE...    judge kubernetes-validate output: every object "passed", no ERROR,
                                    no WARN except "Couldn't find schema" for the CRD allowlist
  crds RENDERED.yaml                structural checks of the CRD objects kubernetes-validate cannot check
  prometheus-rules RENDERED.yaml O  write the PrometheusRule's spec (a rule file) to O, for promtool
  nats-conf NATS_VALUES OUT         the nats-server settings of Helm/nats-values.yaml as a nats.conf
  checkov-annotate EXC RENDER DIR PLAN
                                    put each exception of EXC (Helm/checkov-exceptions.yaml) that applies
                                    to RENDER on the matching objects under DIR, as checkov.io/skipN
                                    annotations (the templates never carry them); PLAN lists them
  checkov-verify EXC RAW.json OFFICIAL.json PLAN...
                                    checkov's JSON on the plain renders (RAW) must fail exactly the
                                    planned exceptions; on the annotated ones (OFFICIAL): passed > 0,
                                    failed == 0, one skip per exception
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
# API version; `crds` checks them instead.
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


# --- CRD objects -------------------------------------------------------------------------------------

# The fields of cert-manager's Certificate this chart sets (cert-manager.io/v1), and its CA Issuer.
_CERT_DURATION = {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"}
_ISSUER_REF = {
    "type": "object", "required": ["name", "kind"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"const": "cert-manager.io"},
    },
}

CRD_SCHEMAS = {
    "Certificate": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "metadata": {"type": "object", "required": ["name", "namespace"]},
            "spec": {
                "type": "object", "required": ["secretName", "issuerRef"], "additionalProperties": False,
                "properties": {
                    "secretName": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                    "commonName": {"type": "string", "minLength": 1, "maxLength": 64},
                    "dnsNames": {"type": "array", "items": {"type": "string"}},
                    "duration": _CERT_DURATION,
                    "renewBefore": _CERT_DURATION,
                    "isCA": {"type": "boolean"},
                    "privateKey": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                            "size": {"type": "integer"},
                            "rotationPolicy": {"enum": ["Never", "Always"]},
                            "encoding": {"enum": ["PKCS1", "PKCS8"]},
                        },
                    },
                    "usages": {
                        "type": "array",
                        "items": {"enum": ["digital signature", "key encipherment", "client auth",
                                           "server auth", "cert sign", "crl sign"]},
                    },
                    "issuerRef": _ISSUER_REF,
                },
            },
        },
    },
    "Issuer": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "metadata": {"type": "object", "required": ["name", "namespace"]},
            "spec": {
                "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
                "properties": {
                    "ca": {"type": "object", "required": ["secretName"], "additionalProperties": False,
                           "properties": {"secretName": {"type": "string", "minLength": 1}}},
                    "selfSigned": {"type": "object"},
                },
            },
        },
    },
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": {"type": "object", "required": ["name", "namespace"]},
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {"type": "object", "minProperties": 1},
                    "namespaceSelector": {"type": "object"},
                    "endpoints": {
                        "type": "array", "minItems": 1,
                        "items": {
                            "type": "object", "required": ["port"],
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "metadata": {"type": "object", "required": ["name", "namespace"]},
            "spec": {
                "type": "object", "required": ["groups"], "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array", "minItems": 1,
                        "items": {
                            "type": "object", "required": ["name", "rules"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "rules": {
                                    "type": "array", "minItems": 1,
                                    "items": {
                                        "type": "object", "required": ["expr"],
                                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                        "properties": {
                                            "expr": {"type": "string", "minLength": 1},
                                            "for": {"type": "string"},
                                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def check_crds(path: str) -> int:
    import jsonschema

    found, problems = 0, []
    for doc in load_all(path):
        schema = CRD_SCHEMAS.get(doc.get("kind"))
        if schema is None:
            continue
        found += 1
        validator = jsonschema.Draft7Validator(schema)
        for err in validator.iter_errors(doc):
            where = "/".join(str(p) for p in err.absolute_path)
            problems.append(f"{doc['kind']}/{doc.get('metadata', {}).get('name')}: {where}: {err.message}")
    for p in problems:
        print(f"  FAIL {p}")
    print(f"  CRD objects checked: {found}, problems: {len(problems)}")
    return 1 if problems else 0


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


def checkov_annotate(exc_path: str, render_name: str, directory: str, plan_path: str) -> int:
    """Annotate the matching objects under DIRECTORY; write the (render, resource, check) pairs to PLAN."""
    entries = load_exceptions(exc_path)
    plan = []
    for f in sorted(Path(directory).rglob("*.yaml")):
        docs = load_all(f)
        changed = False
        for doc in docs:
            n = 0
            for e in entries:
                if applies(e, render_name, doc):
                    n += 1
                    meta = doc.setdefault("metadata", {})
                    ann = meta.get("annotations") or {}
                    meta["annotations"] = ann
                    # checkov reads "<ID>=<reason>"; keep the reason on one line.
                    ann[f"checkov.io/skip{n}"] = f"{e['id']}={' '.join(e['reason'].split())}"
                    plan.append([render_name, resource_id(doc), e["id"]])
                    changed = True
        if changed:
            f.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    Path(plan_path).write_text(json.dumps(plan), encoding="utf-8")
    print(f"  {len(plan)} exceptions from {exc_path} put on the objects of render '{render_name}'")
    return 0


def _reports(path: str) -> list[dict]:
    p = Path(path)
    if p.is_dir():  # checkov 3 writes <path>/results_json.json for a single output, <path> for several
        p = p / "results_json.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    reports = data if isinstance(data, list) else [data]
    return [r for r in reports if r.get("check_type") in (None, "kubernetes")]


def checkov_verify(exc_path: str, raw_path: str, official_path: str, *plan_paths: str) -> int:
    """RAW: checkov on the renders as they are; OFFICIAL: on the annotated copies.

    The failures of RAW must be exactly the planned exceptions (nothing unexcepted, nothing stale),
    and OFFICIAL must have passed checks, no failure and one skip per planned exception.
    """
    entries = load_exceptions(exc_path)
    plan = {tuple(p) for path in plan_paths for p in json.loads(Path(path).read_text(encoding="utf-8"))}
    raw = set()
    names = {}
    for r in _reports(raw_path):
        for c in r.get("results", {}).get("failed_checks", []):
            render_name = c.get("file_path", "").strip("/").split("/", 1)[0]
            key = (render_name, c["resource"], c["check_id"])
            raw.add(key)
            names[key] = c.get("check_name", "")
    summary = {"passed": 0, "failed": 0, "skipped": 0}
    official_failures = []
    for r in _reports(official_path):
        for k in summary:
            summary[k] += r.get("summary", {}).get(k, 0)
        for c in r.get("results", {}).get("failed_checks", []):
            official_failures.append(f"{c['check_id']} {c['resource']} ({c.get('file_path')}): {c.get('check_name')}")
    rc = 0
    for key in sorted(raw - plan):
        print(f"  FAIL checkov {key[2]} on {key[1]} (render {key[0]}): {names[key]}")
        rc = 1
    if raw - plan:
        print(f"  -> fix the chart, or add a justified entry to {exc_path}")
    for key in sorted(plan - raw):
        print(f"  FAIL stale exception {key[2]} on {key[1]} (render {key[0]}): the check passes there; "
              f"narrow or remove the entry in {exc_path}")
        rc = 1
    for f in official_failures:
        print(f"  FAIL checkov {f}")
        rc = 1
    if summary["passed"] == 0:
        print("  FAIL checkov passed no check at all: it did not run on the rendered objects")
        rc = 1
    if summary["skipped"] != len(plan):
        print(f"  FAIL checkov skipped {summary['skipped']} checks, but {len(plan)} exceptions were put on objects")
        rc = 1
    ids = ", ".join(sorted({e["id"] for e in entries})) or "none"
    print(f"  checkov: {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped "
          f"(exceptions {ids})")
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
    if cmd == "crds":
        return check_crds(args[0])
    if cmd == "prometheus-rules":
        return prometheus_rules(args[0], args[1])
    if cmd == "nats-conf":
        return nats_conf(args[0], args[1])
    if cmd == "checkov-annotate":
        return checkov_annotate(*args)
    if cmd == "checkov-verify":
        return checkov_verify(*args)
    print(f"unknown subcommand {cmd}\n{__doc__}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
