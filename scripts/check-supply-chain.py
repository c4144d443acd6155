#!/usr/bin/env python3
# Why: hadolint, zizmor and cargo-deny do not check digest-pinned FROMs, auditable binaries and pinned actions together; this does, offline.
"""Supply-chain checks no linter makes (`make test-deploy`; offline, Python standard library only).

    scripts/check-supply-chain.py [--root DIR]      the checks below on the repository (or DIR)
    scripts/check-supply-chain.py auditable BIN...  each binary carries a cargo-auditable dependency list

1. Dockerfile: every FROM is `scratch`, an earlier stage, or pinned by digest (`image@sha256:<64 hex>`).
2. The release binaries carry their dependency list: the Dockerfile builds them with
   `cargo auditable build`, installs cargo-auditable with --locked at the version that
   scripts/install-supply-chain-tools.sh pins, and `make image` builds with it too.
3. .github/workflows: every `uses:` is pinned to a full commit SHA with its version in a comment
   (zizmor checks the pin; the comment is what people and Dependabot read), and a workflow that
   pushes anything (`packages: write`) uses no cache a pull request could have written.
4. Image digests in the chart's values: Helm/values.yaml has none (defaults cannot know one), and
   Helm/values-production.yaml has none (not released yet) or the one the release step
   (scripts/pin-image-digest.py) wrote, its comment naming the same digest: a digest typed or
   pasted by hand, such as a placeholder, fails.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PIN_MARK = "# Pinned by scripts/pin-image-digest.py (the release step): "
# Digests known to have been placeholders in this repository's history.
KNOWN_PLACEHOLDERS = {"sha256:4b7e3c0f1d2a5968b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4"}


def logical_lines(text: str) -> list[str]:
    """Dockerfile lines with `\\` continuations joined and comments dropped."""
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return [line for line in out if line.strip()]


def check_dockerfile(root: Path) -> list[str]:
    problems, stages = [], set()
    lines = logical_lines((root / "Dockerfile").read_text(encoding="utf-8"))
    for line in lines:
        words = line.split()
        if words[0].upper() != "FROM":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        image = args[0]
        # `FROM <earlier stage>` and `FROM scratch` pull nothing.
        if image != "scratch" and image.lower() not in stages and not re.search(r"@sha256:[0-9a-f]{64}$", image):
            problems.append(f"Dockerfile: `{line.strip()}` is not pinned by digest (image@sha256:<64 hex>)")
        if len(args) >= 3 and args[1].upper() == "AS":
            stages.add(args[2].lower())
    builds = [line for line in lines if re.search(r"\bcargo (auditable )?build\b.*--release", line)]
    if not builds:
        problems.append("Dockerfile: no release build found")
    for line in builds:
        if "cargo auditable build" not in line:
            problems.append(f"Dockerfile: a release build without cargo-auditable: `{line.strip()[:120]}`")
    wanted = pinned_auditable_version(root)
    installed = re.search(r"^ARG CARGO_AUDITABLE_VERSION=(\S+)$", "\n".join(lines), re.M)
    if not installed or installed.group(1) != wanted:
        problems.append(f"Dockerfile: ARG CARGO_AUDITABLE_VERSION is not {wanted} (scripts/install-supply-chain-tools.sh)")
    if not any(re.search(r"cargo install --locked \S*cargo-auditable@", line) for line in lines):
        problems.append("Dockerfile: cargo-auditable is not installed with `cargo install --locked cargo-auditable@<version>`")
    return problems


def pinned_auditable_version(root: Path) -> str | None:
    script = root / "scripts" / "install-supply-chain-tools.sh"
    found = script.is_file() and re.search(r"^CARGO_AUDITABLE_VERSION=(\S+)$", script.read_text(encoding="utf-8"), re.M)
    return found.group(1) if found else None


def check_makefile(root: Path) -> list[str]:
    text = (root / "Makefile").read_text(encoding="utf-8")
    image = re.search(r"^image:.*?(?=^\S|\Z)", text, re.M | re.S)
    if not image or "auditable build" not in image.group(0):
        return ["Makefile: `make image` does not build with cargo-auditable"]
    return []


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*['\"]?([^\s'\"#]+)['\"]?\s*(?:#\s*(\S+))?")


def check_workflows(root: Path) -> list[str]:
    problems = []
    files = sorted((root / ".github" / "workflows").glob("*.y*ml"))
    if not files:
        return ["no workflow in .github/workflows"]
    for path in files:
        name = path.relative_to(root)
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            used = USES.match(line)
            if not used:
                continue
            action, comment = used.groups()
            if action.startswith("./"):
                continue
            if action.startswith("docker://"):
                if "@sha256:" not in action:
                    problems.append(f"{name}:{number}: {action} is not pinned by digest")
                continue
            if not re.search(r"@[0-9a-f]{40}$", action):
                problems.append(f"{name}:{number}: {action} is not pinned to a full commit SHA")
            elif not comment or not re.match(r"^v\d+(\.\d+)*$", comment):
                problems.append(f"{name}:{number}: {action} has no `# vX.Y.Z` comment naming its version")
        # Comments dropped: a comment may say "no actions/cache".
        code = "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())
        if re.search(r"^\s*packages:\s*write", code, re.M):
            for pattern in (r"actions/cache", r"type=gha", r"^\s*cache-(from|to):"):
                if re.search(pattern, code, re.M):
                    problems.append(f"{name}: pushes (packages: write) and uses a cache ({pattern})")
    return problems


def image_block(text: str) -> list[str]:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "image:"), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\S", lines[i])), len(lines))
    return lines[start + 1 : end]


def digest_of(block: list[str]) -> tuple[str, int] | None:
    for index, line in enumerate(block):
        found = re.match(r"^\s+digest:\s*['\"]?([^'\"\s#]*)", line)
        if found:
            return found.group(1), index
    return None


def check_values(root: Path) -> list[str]:
    problems = []
    defaults = digest_of(image_block((root / "Helm" / "values.yaml").read_text(encoding="utf-8")))
    if defaults is None or defaults[0] != "":
        problems.append("Helm/values.yaml: image.digest must be empty (the release job pins it in the packaged chart)")
    block = image_block((root / "Helm" / "values-production.yaml").read_text(encoding="utf-8"))
    production = digest_of(block)
    if production is None:
        return problems + ["Helm/values-production.yaml: no image.digest key"]
    digest, index = production
    if digest == "":
        return problems
    mark = block[index - 1].strip() if index > 0 else ""
    if not DIGEST.match(digest):
        problems.append(f"Helm/values-production.yaml: image.digest {digest!r} is not sha256:<64 hex>")
    elif digest in KNOWN_PLACEHOLDERS or len(set(digest[7:])) < 10:
        problems.append(f"Helm/values-production.yaml: image.digest {digest} is a placeholder")
    elif not (mark.startswith(PIN_MARK) and mark.endswith("@" + digest)):
        problems.append(
            "Helm/values-production.yaml: image.digest was not written by the release step "
            "(make pin-image DIGEST=... TAG=...; see README, Releasing)"
        )
    return problems


def auditable(binaries: list[str]) -> int:
    """Each binary's `.dep-v0` section: zlib-compressed JSON listing the crates it was built from."""
    failed = 0
    for binary in binaries:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "dep-v0"
            dumped = subprocess.run(
                ["objcopy", "--dump-section", f".dep-v0={out}", binary, str(Path(tmp) / "copy")],
                capture_output=True, text=True,
            )
            if dumped.returncode != 0 or not out.is_file():
                print(f"{binary}: no cargo-auditable dependency list (.dep-v0): {dumped.stderr.strip()}")
                failed += 1
                continue
            packages = json.loads(zlib.decompress(out.read_bytes()))["packages"]
        roots = [p["name"] for p in packages if p.get("root")]
        registry = [p for p in packages if p.get("source") == "crates.io"]
        if not roots or not registry:
            print(f"{binary}: the dependency list names no root or no crates.io package")
            failed += 1
            continue
        print(f"{binary}: {len(packages)} packages, root {', '.join(roots)}, {len(registry)} from crates.io")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["auditable"]:
        return auditable(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    root = parser.parse_args(argv).root
    problems = check_dockerfile(root) + check_makefile(root) + check_workflows(root) + check_values(root)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    print("supply chain: FROM pinned by digest, binaries auditable, actions pinned by SHA, no cache where images are pushed, no placeholder digest")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
