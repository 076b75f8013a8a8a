"""The house rules, checked on the imports of every module: which room may import which.

Rooms, from the bottom: basics (``config``, ``audio``, ``room``, ``models``) and ``text`` › engines › voices › service ›
doors (``cli``, ``wyoming``, ``mqtt``, ``web``, ``addon``, ``homeassistant``). Doors talk to the service only (never
to engines, voices or text; basics such as settings and audio formats are fine); engines know no voice library,
service or door; the engine protocol (``engines/base.py``) imports no engine and no engine imports the registry (no
circle). Imports inside functions count too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "voiceclone_core"

ROOMS = {
    "basics": ("config", "audio", "room", "models", "watermark"),
    "text": ("text",),
    "engines": ("engines",),
    "voices": ("voices",),
    "service": ("service",),
    "doors": ("cli", "wyoming", "mqtt", "web", "addon", "homeassistant"),
}
MAY_IMPORT = {
    "basics": {"basics"},
    "text": {"text"},
    "engines": {"basics", "text", "engines"},
    "voices": {"basics", "engines"},
    "service": {"basics", "text", "engines", "voices", "service"},
    "doors": {"basics", "service", "doors"},
}


def room_of(module: str) -> str:
    """The room of a module named ``voiceclone_core.x.y``."""
    top = module.split(".")[1]
    for room, names in ROOMS.items():
        if top in names:
            return room
    raise AssertionError(f"{module} is in no room: add it to ROOMS")


def imports_of(module: str, source: str, is_package: bool = False) -> set[str]:
    """The voiceclone_core modules ``source`` imports (absolute and relative, anywhere in the file).

    ``from a.b import c`` counts as importing ``a.b`` and ``a.b.c`` (``c`` may be a module).
    """
    found = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("voiceclone_core.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            if base == "voiceclone_core" or base.startswith("voiceclone_core."):
                found |= {f"{base}.{a.name}" for a in node.names}
                found.add(base)
    return found - {"voiceclone_core"}


def violations(sources: dict[str, str]) -> list[str]:
    """Every import that breaks a house rule, as ``importer -> imported (why)``."""
    out = []
    for name, source in sorted(sources.items()):
        module = name.removesuffix(".__init__")
        room = room_of(module)
        for target in sorted(imports_of(module, source, is_package=name.endswith(".__init__"))):
            if room_of(target) not in MAY_IMPORT[room]:
                out.append(f"{module} -> {target} ({room} may not import {room_of(target)})")
            if module == "voiceclone_core.engines.base" and target.startswith("voiceclone_core.engines."):
                out.append(f"{module} -> {target} (the engine protocol imports no engine)")
            if room == "engines" and target == "voiceclone_core.engines.registry" and "registry" not in module:
                out.append(f"{module} -> {target} (engines do not import the registry)")
    return out


def package_sources() -> dict[str, str]:
    sources = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if len(parts) > 2 or parts[-1] != "__init__":  # the package root itself holds nothing
            sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources


def test_the_house_keeps_its_rules() -> None:
    sources = package_sources()
    assert len(sources) > 30
    assert violations(sources) == []


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("voiceclone_core.web.app", "from voiceclone_core.engines.base import EngineError", "doors may not import"),
        ("voiceclone_core.cli", "from voiceclone_core.voices import VoiceLibrary", "doors may not import voices"),
        ("voiceclone_core.wyoming.handler", "from voiceclone_core import audio, text", "doors may not import text"),
        ("voiceclone_core.mqtt.bridge", "def f():\n    import voiceclone_core.engines.classic\n", "may not import"),
        ("voiceclone_core.engines.qwen3", "from voiceclone_core.service import SpeechService", "engines may not"),
        ("voiceclone_core.engines.classic", "from voiceclone_core.voices import VoiceLibrary", "engines may not"),
        ("voiceclone_core.engines.base", "from voiceclone_core.engines import classic", "imports no engine"),
        ("voiceclone_core.engines.pocket", "from .registry import register_engine", "do not import the registry"),
        ("voiceclone_core.service.speech", "from voiceclone_core.web.app import start_web", "service may not"),
        ("voiceclone_core.voices", "from .service import build_service", "voices may not import service"),
    ],
)
def test_the_check_fails_when_a_rule_is_broken(module: str, source: str, why: str) -> None:
    found = violations({module: source})
    assert found and why in found[0], found


def test_relative_imports_are_resolved() -> None:
    found = imports_of("voiceclone_core.service.speech", "from .errors import X\nfrom ..voices import Y")
    assert {"voiceclone_core.service.errors", "voiceclone_core.voices"} <= found
    assert "voiceclone_core.text.chunking" in imports_of("voiceclone_core.text", "from .chunking import x", True)


def test_the_home_assistant_integration_never_imports_the_core_or_torch() -> None:
    # read as text: the integration uses syntax newer than this interpreter's parser (it runs inside HA)
    pattern = re.compile(r"^\s*(?:from|import)\s+(voiceclone_core|torch)\b", re.M)
    files = list((ROOT / "custom_components" / "voiceclone").glob("*.py"))
    assert files and not [f.name for f in files if pattern.search(f.read_text(encoding="utf-8"))]
