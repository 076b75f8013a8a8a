"""An engine module for registry tests: records what the registry hands its factory and probe."""

from __future__ import annotations

from typing import Any

from tests.conftest import FakeEngine

received: list[tuple[str, Any, Any]] = []
unavailable_because: str | None = None


def probe(section: Any, context: Any) -> str | None:
    received.append(("probe", section, context))
    return unavailable_because


def create(section: Any, context: Any) -> FakeEngine:
    received.append(("create", section, context))
    return FakeEngine()
