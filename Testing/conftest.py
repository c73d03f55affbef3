"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The bundled real reference cases (Testing/data/real, see its README.md)."""
    return REPO_ROOT / "Testing" / "data" / "real"
