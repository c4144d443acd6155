#!/usr/bin/env python3
# Why: no installed validator knows Argo CD's Application or checks that the chart paths and values files it names exist in this repository.
"""Checks the Argo CD Applications in deploy/argocd: valid YAML, the fields Argo CD requires, and
that every path and values file they name exists in this repository (so a moved chart cannot leave
a broken deployment). Needs PyYAML (run it with the kubernetes-validate venv's python)."""
import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
failures = []


def need(condition, message):
    if not condition:
        failures.append(message)


files = sorted((root / "deploy/argocd").glob("*.yaml"))
need(files, "no Argo CD Application in deploy/argocd")
for path in files:
    name = path.relative_to(root)
    for doc in yaml.safe_load_all(path.read_text()):
        need(doc.get("apiVersion") == "argoproj.io/v1alpha1", f"{name}: apiVersion is not argoproj.io/v1alpha1")
        need(doc.get("kind") == "Application", f"{name}: kind is not Application")
        need(doc.get("metadata", {}).get("name"), f"{name}: metadata.name missing")
        spec = doc.get("spec", {})
        destination = spec.get("destination", {})
        need(destination.get("server") or destination.get("name"), f"{name}: spec.destination needs server or name")
        need(destination.get("namespace"), f"{name}: spec.destination.namespace missing")
        sources = spec.get("sources") or [spec.get("source")]
        need(all(sources), f"{name}: spec.source or spec.sources missing")
        refs = {s.get("ref") for s in sources if s and s.get("ref")}
        for source in filter(None, sources):
            need(source.get("repoURL"), f"{name}: a source has no repoURL")
            need(source.get("targetRevision"), f"{name}: a source has no targetRevision")
            if source.get("path"):
                need((root / source["path"]).is_dir(), f"{name}: path {source['path']} is not in the repository")
                need((root / source["path"] / "Chart.yaml").is_file(), f"{name}: {source['path']} is not a chart")
            for values in source.get("helm", {}).get("valueFiles", []):
                if values.startswith("$"):
                    ref, _, rel = values[1:].partition("/")
                    need(ref in refs, f"{name}: valueFiles {values} names an unknown ref")
                    need((root / rel).is_file(), f"{name}: values file {rel} is not in the repository")
                else:
                    need((root / source.get("path", "") / values).is_file(), f"{name}: values file {values} missing")
        if spec.get("syncPolicy", {}).get("automated"):
            need("CreateNamespace=true" in spec["syncPolicy"].get("syncOptions", []), f"{name}: automated sync without CreateNamespace")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"argocd: {len(files)} Application file(s) valid")
