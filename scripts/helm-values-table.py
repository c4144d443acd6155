#!/usr/bin/env python3
"""Generates the values table of Helm/README.md from the `# --` comments of Helm/values.yaml.

    scripts/helm-values-table.py            print the table
    scripts/helm-values-table.py --write    rewrite it in Helm/README.md, between the markers
    scripts/helm-values-table.py --check    exit 1 (with a diff) if Helm/README.md's table differs

The format is helm-docs': a `# -- description` comment (continued by plain `#` lines) right above a
key documents it; nested keys are dotted (`nats.auth.enabled`). Stdlib only, so a line-based reader
of the subset of YAML that values.yaml keeps to: block mappings, and leaf values on one line (scalars
and flow-style `{}`/`[]`). It fails on any leaf without a description, so every value stays
documented; a mapping key with children needs none (its children are the rows).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "Helm" / "values.yaml"
README = ROOT / "Helm" / "README.md"
START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/\"']+):(?:\s+(?P<value>.*?))?\s*$")
DOC_START = re.compile(r"^\s*# -- ?(?P<text>.*)$")
DOC_CONT = re.compile(r"^\s*#(?: (?P<text>.*))?$")


class ValuesError(Exception):
    pass


def value_type(v: str) -> str:
    if v.startswith("{"):
        return "object"
    if v.startswith("["):
        return "list"
    if v in ("true", "false"):
        return "bool"
    if v in ("null", "~"):
        return "null"
    if re.fullmatch(r"-?[0-9]+", v):
        return "int"
    if re.fullmatch(r"-?[0-9]*\.[0-9]+([eE][-+]?[0-9]+)?", v):
        return "float"
    return "string"


def parse(text: str) -> list[tuple[str, str, str, str]]:
    """[(dotted key, type, default as written, description)] in file order."""
    rows: list[tuple[str, str, str, str]] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    doc: list[str] | None = None
    pending_parent: tuple[int, str, int] | None = None  # a key with no value: must get children
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            doc = None  # a blank line ends a comment block: it documents nothing
            continue
        if m := DOC_START.match(line):
            doc = [m.group("text").strip()]
            continue
        if line.lstrip().startswith("#"):
            if doc is not None and (m := DOC_CONT.match(line)):
                doc.append((m.group("text") or "").strip())
            continue
        m = KEY_LINE.match(line)
        if not m:
            if line.lstrip().startswith("- "):
                raise ValuesError(f"values.yaml:{n}: block lists are not supported; write the list in flow style ([a, b])")
            raise ValuesError(f"values.yaml:{n}: cannot read this line: {line!r}")
        indent = len(m.group("indent"))
        key = m.group("key").strip("\"'")
        value = m.group("value")
        if pending_parent is not None:
            p_indent, p_key, p_line = pending_parent
            if indent <= p_indent:
                raise ValuesError(f"values.yaml:{p_line}: '{p_key}' has neither a value nor children")
            pending_parent = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        if value is None or value == "":
            stack.append((indent, key))
            pending_parent = (indent, dotted, n)
            doc = None
            continue
        if not doc or not " ".join(doc).strip():
            raise ValuesError(f"values.yaml:{n}: '{dotted}' has no '# --' description")
        rows.append((dotted, value_type(value), value, " ".join(t for t in doc if t)))
        doc = None
    if pending_parent is not None:
        raise ValuesError(f"values.yaml:{pending_parent[2]}: '{pending_parent[1]}' has neither a value nor children")
    return rows


def cell(s: str) -> str:
    return s.replace("|", "\\|")


def table(rows: list[tuple[str, str, str, str]]) -> str:
    out = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for key, typ, default, desc in rows:
        out.append(f"| `{cell(key)}` | {typ} | `{cell(default)}` | {cell(desc)} |")
    return "\n".join(out) + "\n"


def replace_block(readme: str, new_table: str) -> str:
    if START not in readme or END not in readme:
        raise ValuesError(f"{README} lacks the markers {START} / {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{new_table}{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="exit 1 if Helm/README.md's table is out of date")
    g.add_argument("--write", action="store_true", help="rewrite the table in Helm/README.md")
    args = ap.parse_args()
    try:
        new_table = table(parse(VALUES.read_text(encoding="utf-8")))
        if not (args.check or args.write):
            sys.stdout.write(new_table)
            return 0
        readme = README.read_text(encoding="utf-8")
        updated = replace_block(readme, new_table)
    except ValuesError as e:
        print(f"helm-values-table: {e}", file=sys.stderr)
        return 1
    if args.write:
        if updated != readme:
            README.write_text(updated, encoding="utf-8")
            print(f"helm-values-table: rewrote the table in {README.relative_to(ROOT)}")
        return 0
    if updated != readme:
        sys.stdout.writelines(difflib.unified_diff(
            readme.splitlines(keepends=True), updated.splitlines(keepends=True),
            "Helm/README.md", "Helm/README.md (from values.yaml)"))
        print("helm-values-table: the table in Helm/README.md is out of date: "
              "run scripts/helm-values-table.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
