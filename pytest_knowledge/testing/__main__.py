"""Regenerate the shipped fixture checkpoints from their recipes, or check that a fresh training
still reproduces them: ``python -m pytest_knowledge.testing [--check] [NAME ...]``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pytest_knowledge.core.files import folder_atomic
from pytest_knowledge.testing import CHECKPOINTS, FIXTURE_MODELS
from pytest_knowledge.testing.training import (
    RECIPES,
    facts_p_at_1,
    train,
    training_facts,
)

TOLERANCE = 0.03  # P@1 a fresh training on another CPU may differ by (seen: 0.0054)


def regenerate(name: str, target: Path) -> float:
    """Train ``name`` into ``target`` (replacing it) and return its P@1."""
    with folder_atomic(target, replace=True) as scratch:
        train(RECIPES[name], training_facts(RECIPES[name]), scratch)
    return facts_p_at_1(name, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_knowledge.testing", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"fixture models (default: {' '.join(FIXTURE_MODELS)})")
    parser.add_argument("--check", action="store_true",
                        help=f"train into a temporary folder and compare P@1 with the shipped checkpoint (±{TOLERANCE})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(FIXTURE_MODELS))
    if unknown:
        parser.error(f"unknown fixture model(s) {', '.join(unknown)}; known: {', '.join(FIXTURE_MODELS)}")
    failed = False
    for name in args.names or FIXTURE_MODELS:
        if not args.check:
            CHECKPOINTS.mkdir(exist_ok=True)
            print(f"{name}: P@1 {regenerate(name, CHECKPOINTS / name):.4f}, written to {CHECKPOINTS / name}")
            continue
        with tempfile.TemporaryDirectory() as folder:
            fresh = regenerate(name, Path(folder) / name)
        shipped = facts_p_at_1(name, CHECKPOINTS / name)
        ok = abs(fresh - shipped) <= TOLERANCE
        failed |= not ok
        print(f"{name}: shipped P@1 {shipped:.4f}, fresh training {fresh:.4f} ({'ok' if ok else 'differs'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
