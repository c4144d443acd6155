#!/usr/bin/env python3
# Why: the release step writes the pushed image's digest into values-production.yaml keeping its comments, which no YAML tool here does.
"""The release step that pins the image: writes the digest CI pushed (and the release's tag) into the
`image:` block of Helm values files, with a comment saying where it came from.

    scripts/pin-image-digest.py sha256:<64 hex> [--tag 0.3.0] [FILE ...]   (default: Helm/values-production.yaml)
    make pin-image DIGEST=sha256:<64 hex> TAG=0.3.0

The release workflow (.github/workflows/release.yaml) runs it on the packaged chart and prints the
`make pin-image` line for the commit that makes Argo CD deploy the release. Nothing else writes a
digest into values-production.yaml: scripts/check-supply-chain.py fails on a digest without this
script's comment, or one that does not match it (a placeholder typed by hand, a copy-paste edit).
Python standard library only; the YAML is edited line by line so its comments stay.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# The comment the check looks for, right above the digest line.
MARK = "# Pinned by scripts/pin-image-digest.py (the release step): "


def pin(text: str, digest: str, tag: str | None) -> str:
    """`text` with the top-level `image:` block's digest (and tag) replaced."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "image:"), None)
    if start is None:
        raise ValueError("no top-level `image:` block")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\S", lines[i])), len(lines))
    block = [line for line in lines[start + 1 : end] if not line.lstrip().startswith(MARK)]
    indent = next((re.match(r"^(\s+)", line).group(1) for line in block if line.strip()), "  ")
    if tag is None:
        current = (re.match(rf"^{indent}tag:\s*['\"]?([^'\"\s#]*)", line) for line in block)
        tag = next((found.group(1) for found in current if found), "")
        write_tag = False
    else:
        write_tag = True
    out, seen = [], set()
    for line in block:
        key = re.match(rf"^{indent}(digest|tag):", line)
        if key and key.group(1) == "digest":
            out.append(f"{indent}{MARK}{tag or '(appVersion)'}@{digest}\n")
            out.append(f'{indent}digest: "{digest}"\n')
            seen.add("digest")
        elif key and key.group(1) == "tag" and write_tag:
            out.append(f'{indent}tag: "{tag}"\n')
            seen.add("tag")
        else:
            out.append(line)
    if "digest" not in seen:
        raise ValueError("the `image:` block has no `digest:` key")
    if write_tag and "tag" not in seen:
        raise ValueError("the `image:` block has no `tag:` key")
    return "".join(lines[: start + 1] + out + lines[end:])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("digest", help="sha256:<64 hex>, as the registry reported it for the pushed image")
    parser.add_argument("--tag", help="the release's image tag (e.g. 0.3.0); default: leave the tag as it is")
    parser.add_argument("files", nargs="*", type=Path, default=[REPO / "Helm" / "values-production.yaml"])
    args = parser.parse_intermixed_args(argv)
    if not DIGEST.match(args.digest):
        parser.error(f"{args.digest!r} is not a digest (sha256:<64 lowercase hex>)")
    if args.tag is not None and (not TAG.match(args.tag) or args.tag == "latest"):
        parser.error(f"{args.tag!r} is not a pinned tag")
    for path in args.files:
        try:
            path.write_text(pin(path.read_text(encoding="utf-8"), args.digest, args.tag), encoding="utf-8")
        except (OSError, ValueError) as error:
            print(f"pin-image-digest: {path}: {error}", file=sys.stderr)
            return 1
        print(f"pin-image-digest: {path}: image {args.tag or '(tag unchanged)'}@{args.digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
