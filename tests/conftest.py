"""Fixtures of the core test suite (the session fixtures are in the repository's ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Settings a user's shell may hold that would leak a model, a server or debug output into a test.
USER_SETTINGS = ("SEARCH_R3_MODEL", "SEARCH_R3_DEMO_MODEL", "QDRANT_URL", "QDRANT_API_KEY", "SEARCH_R3_DEBUG")


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No user model, server, cache or default store leaks into a CLI test; returns ``tmp_path``.

    Use it in a module with ``pytestmark = pytest.mark.usefixtures("isolated_env")``.
    """
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEARCH_R3_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEARCH_R3_STORE", str(tmp_path / "default-store"))
    return tmp_path
