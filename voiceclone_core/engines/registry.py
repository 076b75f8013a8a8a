"""Which engines exist, which one ``auto`` picks here, and how one is built.

The table names each engine's module, which is imported only when that engine is probed or built (so no engine
module imports the registry, and a missing optional package costs nothing until it is asked for). An engine module
defines ``create(section, context) -> Engine`` and, optionally, ``probe(section, context) -> str | None`` (why it
cannot run here, cheaply, without loading it). An engine gets only its own settings section (``settings.<section>``)
and the shared :class:`EngineContext` (models folder, device) — never the rest of the settings tree.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from voiceclone_core.config import Settings
from voiceclone_core.engines.base import Engine, EngineContext, EngineUnavailable, missing_members

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSpec:
    """Where an engine lives: its module, its settings section (None: it takes none) and its ``auto`` rank.

    ``auto`` tries engines by ascending ``auto_rank`` (None: never chosen automatically); ``cuda_rank``, where
    given, replaces it when ``engine.device`` is a CUDA device (an engine far faster on a GPU than on a CPU).
    """

    module: str
    section: str | None = None
    auto_rank: int | None = None
    cuda_rank: int | None = None

    def rank(self, device: str) -> int | None:
        """Where ``auto`` tries this engine on ``device``."""
        return self.cuda_rank if self.cuda_rank is not None and device.startswith("cuda") else self.auto_rank


_ENGINES: dict[str, EngineSpec] = {
    "qwen3": EngineSpec("voiceclone_core.engines.qwen3", "qwen3", auto_rank=10),
    # After pocket on a CPU (benchmarks/omnivoice_cpu.py: real-time factor ~13 at 16 steps on 2 cores, against
    # pocket's 0.22), before it on a GPU; after qwen3, which streams frame by frame and batches requests.
    "omnivoice": EngineSpec("voiceclone_core.engines.omnivoice", "omnivoice", auto_rank=25, cuda_rank=15),
    "pocket": EngineSpec("voiceclone_core.engines.pocket", "pocket", auto_rank=20),
    "classic": EngineSpec("voiceclone_core.engines.classic", "classic", auto_rank=100),
}
FALLBACK = "classic"


def register_engine(name: str, spec: EngineSpec) -> None:
    """Make an engine selectable as ``engine.name: <name>`` (a plug-in, or a test's engine)."""
    _ENGINES[name] = spec


def available_engines() -> list[str]:
    """Names that ``engine.name`` may take (``auto`` picks among them)."""
    return sorted(_ENGINES)


def engine_context(settings: Settings) -> EngineContext:
    """The shared part of the settings every engine may see."""
    return EngineContext(models_dir=settings.resolved_models_dir, device=settings.engine.device)


def _section(settings: Settings, spec: EngineSpec) -> Any:
    return getattr(settings, spec.section) if spec.section else None


def _module(name: str, spec: EngineSpec) -> ModuleType:
    try:
        return importlib.import_module(spec.module)
    except ImportError as exc:
        raise EngineUnavailable(f"engine {name!r} cannot be imported: {exc}") from exc


def choose_engine(settings: Settings) -> tuple[str, list[str]]:
    """The engine ``auto`` picks here and, for the log, why each better-ranked one was passed over."""
    skipped = []
    context = engine_context(settings)
    device = settings.engine.device
    ranked = sorted((s.rank(device), n) for n, s in _ENGINES.items() if s.rank(device) is not None)
    for _, name in ranked:
        spec = _ENGINES[name]
        try:
            probe = getattr(_module(name, spec), "probe", None)
            reason = probe(_section(settings, spec), context) if probe is not None else None
        except EngineUnavailable as exc:
            reason = str(exc)
        if reason is None:
            return name, skipped
        skipped.append(f"{name}: {reason}")
    return FALLBACK, skipped


def required_models(settings: Settings) -> list[str]:
    """The model-manager entries this configuration needs: the named engine's model and ``models.download``."""
    names = list(settings.models.download)
    spec = _ENGINES.get(settings.engine.name)
    model = getattr(_section(settings, spec), "model", None) if spec is not None else None
    if isinstance(model, str) and model and model not in names:
        names.insert(0, model)
    return names


def create_engine(settings: Settings) -> Engine:
    """Build the engine named in settings (``auto``: the best one this machine can run, logging why)."""
    name = settings.engine.name
    if name == "auto":
        name, skipped = choose_engine(settings)
        log.info("engine auto: using %r%s", name, ("; not " + "; not ".join(skipped)) if skipped else "")
    spec = _ENGINES.get(name)
    if spec is None:
        raise EngineUnavailable(f"unknown engine {name!r}; available: {', '.join(available_engines())}")
    engine = _module(name, spec).create(_section(settings, spec), engine_context(settings))
    missing = missing_members(engine)
    if missing:
        raise EngineUnavailable(
            f"engine {name!r} does not implement the engine protocol (missing {', '.join(missing)})"
        )
    log.info(
        "engine %s %s ready (%d Hz, languages %s)",
        engine.name,
        engine.version,
        engine.sample_rate,
        ",".join(engine.languages),
    )
    return engine
