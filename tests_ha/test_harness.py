"""The harness itself: the documented override of the server interpreter must not reach the server as a setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import SERVER_PYTHON, server_env, voiceclone


def test_server_python_override_does_not_reach_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VOICECLONE_SERVER_PYTHON", str(SERVER_PYTHON))
    assert "VOICECLONE_SERVER_PYTHON" not in server_env()
    result = voiceclone("voices", "--data-dir", str(tmp_path))  # the server refuses unknown VOICECLONE_* settings
    assert result.returncode == 0 and "no voices enrolled" in result.stdout
