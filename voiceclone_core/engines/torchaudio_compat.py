"""A stand-in for ``torchaudio`` where the real one cannot load, for packages that import it but barely use it.

PyPI's torchaudio works only beside the torch release it was built for (its ``_torchaudio.so`` fails to load
beside the local torch 2.13 CPU wheel), and the CUDA builds that do match cost gigabytes. Two engines' packages
import it at module level: ``qwen_tts`` (for a tokenizer the 12 Hz models never use) and ``omnivoice`` (which calls
only ``torchaudio.functional.resample``). Where the real torchaudio imports, it is used untouched; otherwise
:func:`ensure_torchaudio` registers a small module whose ``functional.resample`` is the project's own resampler
(``voiceclone_core.audio.resample``) and whose other entry points raise.
"""

from __future__ import annotations

import importlib.machinery
import logging
import sys
import types
from typing import Any

log = logging.getLogger(__name__)

_NAMES = ("torchaudio", "torchaudio.functional", "torchaudio.compliance", "torchaudio.compliance.kaldi")


def _resample(waveform: Any, orig_freq: int, new_freq: int, **_: Any) -> Any:
    """``torchaudio.functional.resample`` for float tensors of shape (..., time), through the project's resampler."""
    import numpy as np
    import torch

    from voiceclone_core import audio

    if int(orig_freq) == int(new_freq):
        return waveform
    x = waveform.detach().cpu().numpy().astype(np.float32, copy=False)
    rows = x.reshape(-1, x.shape[-1])
    out = np.stack([audio.resample(row, int(orig_freq), int(new_freq)) for row in rows])
    return torch.from_numpy(out.reshape(*x.shape[:-1], out.shape[-1])).to(waveform.dtype)


def _unavailable(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("torchaudio is not installed here; only torchaudio.functional.resample has a stand-in")


def real_torchaudio() -> bool:
    """True when a working torchaudio imports (the stand-in is then never installed)."""
    module = sys.modules.get("torchaudio")
    if module is not None:
        return not getattr(module, "VOICECLONE_STAND_IN", False)
    try:
        import torchaudio.compliance.kaldi
        import torchaudio.functional  # noqa: F401
    except Exception:  # any import failure (missing, or its extension does not load) means: not usable here
        for name in _NAMES:
            sys.modules.pop(name, None)
        return False
    return True


def ensure_torchaudio() -> bool:
    """Make ``import torchaudio`` work: the real one if it loads, else the stand-in. True: the real one."""
    if real_torchaudio():
        return True
    modules = {name: types.ModuleType(name) for name in _NAMES}
    for module in modules.values():
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    root, functional, compliance, kaldi = (modules[n] for n in _NAMES)
    root.VOICECLONE_STAND_IN = True
    root.functional, root.compliance, compliance.kaldi = functional, compliance, kaldi
    functional.resample = _resample
    kaldi.fbank = _unavailable
    root.load = root.save = root.info = _unavailable
    sys.modules.update(modules)
    log.info("torchaudio unavailable here: using the stand-in (resample only)")
    return False
