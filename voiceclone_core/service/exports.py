"""Build steps that follow a model download: OmniVoice's CPU graph, made from the installed checkpoint.

Doors (the CLI, the add-on start) call :func:`export_model`; it is explicit and never runs at synthesis time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from voiceclone_core.config import Settings
from voiceclone_core.engines.base import EngineUnavailable
from voiceclone_core.engines.registry import engine_context
from voiceclone_core.models import ModelManager
from voiceclone_core.service.errors import ServiceUnavailable


def _has_cpu_graph(settings: Settings, name: str) -> bool:
    """True for a catalogue model of an engine that builds a CPU graph from it (OmniVoice's)."""
    manager = ModelManager(settings.resolved_models_dir)
    return manager.known(name) and manager.spec(name).engine == "omnivoice"


def needs_export(settings: Settings, name: str) -> bool:
    """True for a catalogue model whose engine runs it on the CPU through a graph built after download."""
    return _has_cpu_graph(settings, name) and settings.omnivoice.backend != "torch"


def export_model(settings: Settings, name: str, force: bool = False) -> Path | None:
    """Build ``name``'s CPU graph unless an up-to-date one exists (None: nothing was needed); ServiceUnavailable
    says why it cannot be built."""
    from voiceclone_core.engines import omnivoice
    from voiceclone_core.engines.omnivoice_onnx import ExportError

    if not _has_cpu_graph(settings, name):
        raise ServiceUnavailable(f"{name}: nothing to export (only OmniVoice checkpoints have a CPU graph to build)")
    cfg = dataclasses.replace(settings.omnivoice, model=name)
    try:
        return omnivoice.build_export(cfg, engine_context(settings), force=force)
    except (EngineUnavailable, ExportError) as exc:
        raise ServiceUnavailable(str(exc)) from exc
