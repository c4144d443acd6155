# Why: proves check-supply-chain.py and pin-image-digest.py pass here and fail on each defect they exist for.
"""Tests of scripts/check-supply-chain.py and scripts/pin-image-digest.py (`make test-deploy`):
the checks pass on this repository, and each fails on the defect it is there for, on a copy.

    python3 -m unittest discover -s scripts -p 'test_*.py'
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
REPO = Path(__file__).resolve().parent.parent


def load(name: str):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = load("check-supply-chain")
pin = load("pin-image-digest")
DIGEST = "sha256:" + hashlib.sha256(b"release-step-test").hexdigest()
FILES = ["Dockerfile", "Makefile", ".github/workflows", "Helm/values.yaml", "Helm/values-production.yaml",
         "scripts/install-supply-chain-tools.sh"]


class SupplyChainChecks(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.root)
        for name in FILES:
            source, target = REPO / name, self.root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy)(source, target)

    def problems(self) -> str:
        out = io.StringIO()
        with redirect_stdout(out):
            code = check.main(["--root", str(self.root)])
        return "" if code == 0 else out.getvalue()

    def edit(self, name: str, old: str, new: str):
        path = self.root / name
        text = path.read_text(encoding="utf-8")
        self.assertIn(old, text, name)
        path.write_text(text.replace(old, new), encoding="utf-8")

    def test_this_repository_passes(self):
        self.assertEqual(self.problems(), "")

    def test_the_release_step_passes_and_a_hand_edited_digest_fails(self):
        with redirect_stdout(io.StringIO()):
            self.assertEqual(pin.main([DIGEST, "--tag", "9.9.9", str(self.root / "Helm/values-production.yaml")]), 0)
        self.assertEqual(self.problems(), "")
        other = "sha256:" + hashlib.sha256(b"typed by hand").hexdigest()
        self.edit("Helm/values-production.yaml", f'digest: "{DIGEST}"', f'digest: "{other}"')
        self.assertIn("not written by the release step", self.problems())

    def test_a_placeholder_digest_fails(self):
        for placeholder in sorted(check.KNOWN_PLACEHOLDERS) + ["sha256:" + "0" * 64]:
            self.edit("Helm/values-production.yaml", 'digest: ""', f"digest: {placeholder}")
            self.assertIn("placeholder", self.problems(), placeholder)
            self.edit("Helm/values-production.yaml", f"digest: {placeholder}", 'digest: ""')

    def test_a_digest_in_the_default_values_fails(self):
        self.edit("Helm/values.yaml", 'digest: ""', f'digest: "{DIGEST}"')
        self.assertIn("Helm/values.yaml", self.problems())

    def test_an_unpinned_base_image_fails(self):
        self.edit("Dockerfile", "FROM rust:1.95.0-slim-bookworm@sha256:", "FROM rust:1.95.0-slim-bookworm AS x\n# @sha256:")
        self.assertIn("not pinned by digest", self.problems())

    def test_a_release_build_without_cargo_auditable_fails(self):
        self.edit("Dockerfile", "cargo auditable build --release --locked --target \"$TARGET\" --bins",
                  "cargo build --release --locked --target \"$TARGET\" --bins")
        self.assertIn("without cargo-auditable", self.problems())

    def test_an_action_pinned_by_tag_or_without_its_version_fails(self):
        self.edit(".github/workflows/ci.yaml", "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
                  "actions/checkout@v4")
        self.assertIn("not pinned to a full commit SHA", self.problems())
        self.edit(".github/workflows/ci.yaml", "actions/checkout@v4", "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683")
        self.edit(".github/workflows/ci.yaml", "9af683 # v4.2.2", "9af683")
        self.assertIn("no `# vX.Y.Z` comment", self.problems())

    def test_a_cache_in_a_workflow_that_pushes_fails(self):
        self.edit(".github/workflows/release.yaml", "          no-cache: true",
                  "          cache-from: type=gha\n          cache-to: type=gha,mode=max")
        self.assertIn("uses a cache", self.problems())


class PinImageDigest(unittest.TestCase):
    def test_refuses_what_is_not_a_digest_or_a_pinned_tag(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
            values.write('image:\n  tag: ""\n  digest: ""\n')
            values.flush()
            for args in (["sha256:abc", values.name], [DIGEST.upper(), values.name],
                         [DIGEST, "--tag", "latest", values.name]):
                with self.assertRaises(SystemExit, msg=args), redirect_stderr(io.StringIO()):
                    pin.main(args)

    def test_keeps_everything_but_the_image_block_s_tag_and_digest(self):
        text = 'a: 1\nimage:\n  # -- doc\n  tag: ""\n  digest: ""\n  pullPolicy: Always\nb:\n  digest: keep\n'
        pinned = pin.pin(text, DIGEST, "1.0.0")
        self.assertEqual(pin.pin(pinned, DIGEST, "1.0.0"), pinned)  # pinning twice changes nothing
        self.assertIn(f'  tag: "1.0.0"\n  {pin.MARK}1.0.0@{DIGEST}\n  digest: "{DIGEST}"\n', pinned)
        self.assertTrue(pinned.startswith("a: 1\nimage:\n  # -- doc\n"))
        self.assertTrue(pinned.endswith("  pullPolicy: Always\nb:\n  digest: keep\n"))


if __name__ == "__main__":
    unittest.main()
