"""The mark every utterance carries: an inaudible watermark that says "AI-generated", and its detector.

Method: Resemble AI's Perth watermark (its "implicit" model, MIT licence). The trained weights ship inside the PyPI
wheel ``resemble-perth``; only that file is read (checked against its SHA-256), and the small convolutional network
that uses it is defined here, so marking needs neither torchaudio nor librosa and can run chunk by chunk.

How it works: the encoder reads a log-magnitude spectrogram (frames of 64 ms every 10 ms) and returns a small gain
for every bin below 2 kHz; the gains are applied to the complex spectrum, so the phase is kept. The decoder reads the
same spectrogram and returns one number in [0, 1]: how sure it is that the clip is marked. The mark is zero-bit: it
says *marked or not*, and carries no payload.

Rates: the network was trained at 32 kHz with a 2048-point FFT and a 320-sample hop. Marking runs at the audio's own
rate with the FFT size and hop scaled to the same 64 ms / 10 ms (so the bins fall on the same frequencies), which
spares two resamplings per chunk; detection resamples to 32 kHz, the rate the decoder was trained at.

Streaming (:class:`MarkStream`): an output sample depends on the input up to ``reach`` samples after it (one FFT
window and the encoder's 15 frames of context, about 0.21 s), so a stream holds that much back until more audio or
the end arrives, and gives the same samples as marking the whole clip at once — except its first output, which
leaves at once (at most ``FIRST_BLOCK_S`` of it): an engine's early first piece is not held back, and its last
0.2 s carry a mark estimated from what had arrived (see :class:`MarkStream`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceclone_core import audio

log = logging.getLogger(__name__)

METHOD = "perth-implicit"
WEIGHTS_PACKAGE = "resemble-perth"
WEIGHTS_FILE = ("perth_net", "pretrained", "implicit", "perth_net_250000.pth.tar")
WEIGHTS_SHA256 = "a15bce457ebc53ce5e6c9c3f11df78cf7ee2bf9cdab0a798902135b4c4027670"

TRAINED_RATE = 32000
TRAINED_FFT = 2048
TRAINED_HOP = 320
SUBBAND_BINS = 128  # the bins below 2 kHz (15.6 Hz apart) that carry the mark
HIDDEN = 256
CONTEXT_FRAMES = 15  # five 7-tap convolutions: 3 frames each side per layer
MIN_DB = -180.0  # magnitudes are clipped at 1e-9 before the log
SPAN_DB = 195.0  # ... and (dB - MIN_DB) / SPAN_DB is what the network sees
SILENT_FRACTION = 0.05  # frames whose summed level is under 5 % of the loudest frame's carry no mark
THRESHOLD = 0.5  # a detection score at or above this means "marked"
DETECT_WINDOW_S = 10.0
DETECT_MAX_S = 120.0  # what a detection reads of a recording, at most
FIRST_BLOCK_S = 0.3  # the most a stream's first output holds (see MarkStream)
FADE_S = 0.005


class WatermarkUnavailable(RuntimeError):
    """The watermark's weights cannot be found or do not match the pinned file."""


@dataclass(frozen=True)
class Detection:
    """What the detector says of a clip: marked or not, its score in [0, 1], the method, and the clip's length."""

    marked: bool
    confidence: float
    seconds: float
    method: str = METHOD
    payload: str | None = None  # the method carries none

    def to_dict(self) -> dict[str, object]:
        return {
            "marked": self.marked,
            "confidence": round(self.confidence, 4),
            "seconds": round(self.seconds, 3),
            "method": self.method,
            "payload": self.payload,
        }


def file_info(voice_name: str, marked: bool, version: str) -> dict[str, str]:
    """The metadata a file of cloned speech carries (WAV ``LIST/INFO`` comment and software)."""
    comment = f"AI-generated voice clone of {voice_name or 'an enrolled voice'}, VoiceClone"
    if marked:
        comment += f"; watermarked ({METHOD})"
    return {"comment": comment, "software": f"VoiceClone {version}"}


@functools.cache
def weights_path() -> Path:
    """Where the installed ``resemble-perth`` wheel keeps the weights (the package itself is never imported; found
    once per process, since the search walks sys.path)."""
    spec = importlib.util.find_spec("perth")
    if spec is None or not spec.submodule_search_locations:
        raise WatermarkUnavailable(f"the watermark needs the package {WEIGHTS_PACKAGE} (pip install {WEIGHTS_PACKAGE})")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*WEIGHTS_FILE)
    if not path.is_file():
        raise WatermarkUnavailable(f"{WEIGHTS_PACKAGE} is installed but has no {path.name}")
    return path


def _network() -> tuple[type, type]:
    """The encoder and decoder classes (built on first use, so importing this module does not import torch)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, act: bool = True) -> None:
            super().__init__()
            self.conv = nn.Conv1d(cin, cout, kernel, padding=kernel // 2)
            self.act = nn.LeakyReLU() if act else nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.conv(x))

    def stack(cout: int) -> nn.Sequential:
        inner = [Conv(HIDDEN, HIDDEN, 7) for _ in range(5)]
        return nn.Sequential(Conv(SUBBAND_BINS, HIDDEN, 1), *inner, Conv(HIDDEN, cout, 1, act=False))

    class Encoder(nn.Module):
        """Level (B, bins, T) -> the change to the level of the first ``SUBBAND_BINS`` bins."""

        def __init__(self) -> None:
            super().__init__()
            self.layers = stack(SUBBAND_BINS)

        def forward(self, level: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.layers(level[:, :SUBBAND_BINS]) * mask

    class Decoder(nn.Module):
        """Level (B, bins, T) -> one score per clip, from three time scales weighed by their own attention."""

        def __init__(self) -> None:
            super().__init__()
            self.slow_layers = stack(2)
            self.normal_layers = stack(2)
            self.fast_layers = stack(2)

        def forward(self, level: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            band = level[:, :SUBBAND_BINS]
            frames = band.shape[2]
            scores, weights = [], []
            for layers, rate in ((self.slow_layers, 1.25), (self.normal_layers, 1.0), (self.fast_layers, 0.75)):
                size = int(frames * rate)
                x = band if rate == 1.0 else F.interpolate(band, size=size, mode="linear", align_corners=True)
                out = layers(x)
                m = F.interpolate(mask, size=out.shape[2], mode="nearest")
                mean = (out * m).sum(dim=2) / m.sum(dim=2).clamp_min(1.0)
                weights.append(mean[:, :1])
                scores.append(mean[:, 1:])
            attention = torch.softmax(torch.cat(weights, dim=1), dim=1)
            return (torch.cat(scores, dim=1) * attention).sum(dim=1)

    return Encoder, Decoder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


_LOADED: dict[Path, tuple[object, object]] = {}  # weights file -> (encoder, decoder), shared by the process
_LOADING = threading.Lock()


def _load_networks(path: Path) -> tuple[object, object]:
    """The encoder and decoder with the weights of ``path``, loaded once per process (they are only read)."""
    with _LOADING:
        if path not in _LOADED:
            import torch

            if _sha256(path) != WEIGHTS_SHA256:
                raise WatermarkUnavailable(f"{path} is not the pinned {WEIGHTS_PACKAGE} 1.0.1 weights file")
            state = torch.load(path, map_location="cpu", weights_only=True)["model"]
            encoder_cls, decoder_cls = _network()
            encoder, decoder = encoder_cls(), decoder_cls()
            encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})
            decoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("decoder.")})
            _LOADED[path] = (encoder.eval(), decoder.eval())
        return _LOADED[path]


class Watermarker:
    """Marks audio and detects the mark. Loads its weights on first use (once per process); cheap to construct."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    def load(self) -> None:
        """Load and check the weights now (:class:`WatermarkUnavailable` if they are missing or altered)."""
        self._networks()

    @staticmethod
    def run_alone() -> None:
        """Torch in this process only marks (the engine does not use it): one thread. Small passes gain little from
        a second, and it would fight the engine's own threads for the cores (measured: 4-5 ms less first-audio
        overhead on 2 cores with the embedded engine)."""
        import torch

        torch.set_num_threads(1)

    def _networks(self) -> tuple[object, object]:
        return _load_networks(self._path or weights_path())

    # -- marking ------------------------------------------------------------------------------------------------
    def mark(self, x: np.ndarray, sr: int) -> np.ndarray:
        """The whole clip, marked (float32, same length and rate)."""
        stream = self.stream(sr)
        return np.concatenate([stream.push(x), stream.flush()])

    def stream(self, sr: int) -> MarkStream:
        """A marker for one utterance arriving in pieces at ``sr``."""
        return MarkStream(self, sr)

    def _mark_segment(self, x: np.ndarray, sr: int, peak: float) -> tuple[np.ndarray, float]:
        """Mark ``x`` as a whole clip; frames under ``SILENT_FRACTION`` of max(peak, this clip's loudest) are left
        alone. Returns the marked clip and the new peak."""
        import torch

        encoder, _ = self._networks()
        n_fft, hop = _frames(sr)
        with torch.inference_mode():
            spec, level, mask, peak = _analyse(x, n_fft, hop, peak)
            change = encoder(level[None], mask[None, None])[0]
            gain = torch.pow(10.0, change * (SPAN_DB / 20.0))
            spec[:SUBBAND_BINS] = spec[:SUBBAND_BINS] * gain
            marked = torch.istft(spec, n_fft, hop, window=torch.hann_window(n_fft), center=True, length=len(x))
        return marked.numpy().astype(np.float32, copy=False), peak

    # -- detection ----------------------------------------------------------------------------------------------
    def score(self, x: np.ndarray, sr: int) -> float:
        """The decoder's score for a clip, in [0, 1] (0 for silence or an empty clip)."""
        import torch

        _, decoder = self._networks()
        y = audio.resample(audio.to_mono(np.asarray(x, dtype=np.float32)), sr, TRAINED_RATE)
        if len(y) <= TRAINED_FFT // 2:
            return 0.0
        with torch.inference_mode():
            _, level, mask, peak = _analyse(y, TRAINED_FFT, TRAINED_HOP, 0.0)
            if peak <= 0:
                return 0.0
            value = decoder(level[None], mask[None, None])[0]
        return float(value.clamp(0.0, 1.0))

    def detect(self, x: np.ndarray, sr: int) -> Detection:
        """Whether a recording carries the mark: its first ``DETECT_MAX_S`` in windows of ``DETECT_WINDOW_S`` (a
        short tail joins the window before it); the highest window's score counts, so cloned speech inside a longer
        recording is found too, and the work is bounded whatever the upload."""
        if sr <= 0:
            raise audio.AudioError(f"invalid sample rate {sr}")
        x = np.asarray(x, dtype=np.float32)[: int(DETECT_MAX_S * sr)]
        window = int(DETECT_WINDOW_S * sr)
        starts = list(range(0, len(x), window)) or [0]
        if len(starts) > 1 and len(x) - starts[-1] < window // 3:
            starts.pop()
        ends = [*starts[1:], len(x)]
        confidence = max(self.score(x[a:b], sr) for a, b in zip(starts, ends, strict=True))
        return Detection(confidence >= THRESHOLD, confidence, len(x) / sr)


class MarkStream:
    """Marks one utterance piece by piece: ``push`` returns what is ready, ``flush`` the rest.

    The first audio leaves at once: the first push returns up to ``FIRST_BLOCK_S`` of what it got. When that is more
    than the input allows to mark exactly (less than ``reach`` of audio after it), its last part is marked from
    what is known and the mark fades out over its last ``FADE_S``, and fades back in at the start of the next output
    (so the mark never jumps, which could click). After that every output is exact: ``reach`` samples are held back
    until more input or the end arrives, and the samples equal :meth:`Watermarker.mark` of the whole input.
    """

    def __init__(self, marker: Watermarker, sr: int) -> None:
        self._marker = marker
        self._sr = int(sr)
        self._n_fft, self._hop = _frames(self._sr)
        self.reach = self._n_fft + (CONTEXT_FRAMES + 1) * self._hop
        self._first_block = int(FIRST_BLOCK_S * self._sr)
        self._fade = np.linspace(0.0, 1.0, max(1, int(FADE_S * self._sr)), dtype=np.float32)
        self._held = np.zeros(0, np.float32)  # input from sample ``_origin`` of the utterance on
        self._origin = 0
        self._given = 0  # samples returned so far
        self._peak = 0.0
        self._fade_in = False  # the last output ended on an estimated mark, faded out
        self.estimated = 0  # samples given with an estimated mark (at most the first output's last ``reach``)

    @property
    def _received(self) -> int:
        return self._origin + len(self._held)

    def push(self, piece: np.ndarray) -> np.ndarray:
        """Take the next piece; return the marked audio ready now (see the class)."""
        self._held = np.concatenate([self._held, np.asarray(piece, dtype=np.float32).reshape(-1)])
        if not self._given:
            return self._give(min(self._received, self._first_block), final=False)
        ready = self._received - self.reach
        if ready - self._given < self._hop * 4:  # too little to be worth a pass
            return np.zeros(0, np.float32)
        return self._give(ready, final=False)

    def flush(self) -> np.ndarray:
        """The rest of the utterance, marked."""
        return self._give(self._received, final=True)

    def _give(self, upto: int, final: bool) -> np.ndarray:
        if upto <= self._given:
            return np.zeros(0, np.float32)
        start = self._aligned_start(self._given)
        end = min(self._received, upto + self.reach)  # what samples before ``upto`` depend on, and no more
        segment = self._held[start - self._origin : end - self._origin]
        marked, self._peak = self._marker._mark_segment(segment, self._sr, self._peak)
        plain = segment[self._given - start : upto - start]
        out = marked[self._given - start : upto - start]
        if self._fade_in or (not final and end < upto + self.reach):
            mark = out - plain
            n = min(len(self._fade), len(mark))
            if self._fade_in:
                mark[:n] *= self._fade[:n]
            if not final and end < upto + self.reach:  # marked from what is known so far
                mark[len(mark) - n :] *= self._fade[::-1][len(self._fade) - n :]
                self.estimated += upto - max(self._given, end - self.reach)
            self._fade_in = not final and end < upto + self.reach
            out = plain + mark
        self._given = upto
        keep = self._aligned_start(self._given)
        self._held = self._held[keep - self._origin :]
        self._origin = keep
        return out

    def _aligned_start(self, given: int) -> int:
        """Where a pass must start so that sample ``given`` on is exact: ``reach`` before it, on a frame boundary
        of the whole utterance (or the utterance's start)."""
        return max(0, (given - self.reach) // self._hop * self._hop)


def _frames(sr: int) -> tuple[int, int]:
    """FFT size and hop at ``sr`` that span the trained 64 ms and 10 ms."""
    if sr < 8000:
        raise audio.AudioError(f"the watermark needs at least 8 kHz audio (got {sr} Hz)")
    return round(TRAINED_FFT * sr / TRAINED_RATE), max(1, round(TRAINED_HOP * sr / TRAINED_RATE))


def _analyse(x: np.ndarray, n_fft: int, hop: int, peak: float) -> tuple[object, object, object, float]:
    """What both networks read of ``x``: its complex spectrum (Hann window, centred frames), the level on the
    network's scale ((dB - MIN_DB) / SPAN_DB of magnitudes rescaled to the trained FFT size, clipped at 1e-9), and
    the mask of frames above ``SILENT_FRACTION`` of max(``peak``, the loudest frame here), with that new peak."""
    import torch

    signal = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    pad_mode = "reflect" if len(x) > n_fft // 2 else "constant"
    spec = torch.stft(
        signal, n_fft, hop, window=torch.hann_window(n_fft), center=True, pad_mode=pad_mode, return_complex=True
    )
    magnitude = spec.abs() * (TRAINED_FFT / n_fft)
    level = (20.0 * torch.log10(magnitude.clamp_min(1e-9)) - MIN_DB) / SPAN_DB
    loudness = level.sum(dim=0)
    peak = max(peak, float(loudness.max()) if loudness.numel() else 0.0)
    mask = (loudness > SILENT_FRACTION * peak).float() if peak > 0 else torch.zeros_like(loudness)
    return spec, level, mask, peak
