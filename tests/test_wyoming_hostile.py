"""The Wyoming door against hostile clients, over real TCP on 127.0.0.1.

One speech service (fake engine, 'Mum' enrolled) serves the whole module; each test starts a real WyomingServer on
it, in an event loop of its own thread, with the settings it needs. Clients are plain blocking sockets that speak
the framing by hand, so they can send what no wyoming library would. Every read has a timeout: a hang fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from voiceclone_core.config import load_settings
from voiceclone_core.service import SpeechService
from voiceclone_core.wyoming.handler import PIPELINE
from voiceclone_core.wyoming.server import WyomingServer

from .conftest import FakeEngine, service_with

TIMEOUT = 5.0  # no answer within this is a hang
MAX_TEXT = 300  # speech.max_text_chars here (the stream cases exceed it cheaply)
MAX_EVENT = 65536  # wyoming.max_event_bytes (the default)
KNOWN = {"describe", "synthesize", "synthesize-start", "synthesize-chunk", "synthesize-stop"}


# -- the server: one event loop in a thread, one service for the module ---------------------------------------
class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wyoming test loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, engine: FakeEngine, speech_wav: Path) -> Iterator[SpeechService]:
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path_factory.mktemp("hostile") / "data")})
    settings.cache.enabled = False
    settings.speech.max_text_chars = MAX_TEXT
    svc = service_with(settings, engine, speech_wav, language="en_GB")
    yield svc
    svc.close()


@pytest.fixture(autouse=True)
def fresh_engine(engine: FakeEngine) -> None:
    engine.delay, engine.gate = 0.0, None


@contextlib.contextmanager
def serving(loop: LoopThread, service: SpeechService, **wyoming: Any) -> Iterator[WyomingServer]:
    """A WyomingServer on a free port with ``wyoming.<key> = value`` for its lifetime."""
    cfg = service.settings.wyoming
    saved = {key: getattr(cfg, key) for key in wyoming}
    for key, value in wyoming.items():
        setattr(cfg, key, value)
    server = WyomingServer(service, uri="tcp://127.0.0.1:0")
    loop.run(server.start(zeroconf=False))
    try:
        yield server
    finally:
        loop.run(server.stop())
        for key, value in saved.items():
            setattr(cfg, key, value)


# -- a client that speaks the framing by hand --------------------------------------------------------------------
@dataclass
class Ev:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""


def frame(event_type: Any, data: Any = None, *, inline: bool = False, ascii_only: bool = True, **header: Any) -> bytes:
    """One event's bytes: the header line, then the data as ``data_length`` bytes (or inline in the header)."""
    head: dict[str, Any] = {"type": event_type, "version": "1.10.2", **header}
    body = b""
    if data is not None:
        if inline:
            head["data"] = data
        else:
            body = _dumps(data, ascii_only)
            head["data_length"] = len(body)
    return _dumps(head, ascii_only) + b"\n" + body


def _dumps(value: Any, ascii_only: bool = True) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


class Client:
    def __init__(self, port: int, timeout: float = TIMEOUT, source: str | None = None) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
        )
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def event(self, event_type: str, data: dict[str, Any] | None = None) -> None:
        self.send(frame(event_type, data))

    def read(self) -> Ev | None:
        """The next event; ``None`` once the server has closed the connection."""
        try:
            line = self.file.readline()
            if not line:
                return None
            head = json.loads(line)
            data = head.get("data") or {}
            if head.get("data_length"):
                data.update(json.loads(self.file.read(head["data_length"])))
            payload = self.file.read(head["payload_length"]) if head.get("payload_length") else b""
        except ConnectionResetError:
            return None
        return Ev(head["type"], data, payload)

    def until(self, *types: str) -> list[Ev]:
        events: list[Ev] = []
        while True:
            event = self.read()
            assert event is not None, f"connection closed after {[e.type for e in events]}"
            events.append(event)
            if event.type in types:
                return events

    def is_closed(self) -> bool:
        """Whether the server has closed the connection (any further event is a failure)."""
        event = self.read()
        assert event is None, f"expected the connection closed, got {event}"
        return True

    def speaks(self, text: str = "Okay.") -> list[Ev]:
        self.event("synthesize", {"text": text, "voice": {"name": "mum"}})
        return self.until("audio-stop", "error")


def healthy(port: int) -> None:
    """The server still answers describe and synthesize."""
    with Client(port) as client:
        client.event("describe")
        info = client.until("info")[-1]
        assert [v["name"] for v in info.data["tts"][0]["voices"]] == ["mum"]
        spoken = client.speaks("The server is still fine.")
        assert spoken[-1].type == "audio-stop" and any(e.payload for e in spoken if e.type == "audio-chunk")


# -- (a) hypothesis: malformed frames and fields -----------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    kind: str
    raw: bytes
    expect: str  # "error" | "ignored"
    fatal: bool | None = False  # the connection is closed after the error (None: either is right)
    stream: bool = False  # a stream was open: synthesize-stopped follows the error


huge_ints = st.one_of(st.sampled_from([10**400, -(10**400), 2**63, 2**64 + 1]), st.integers(10**20, 10**400))
surrogate = st.integers(0xD800, 0xDFFF).map(chr)
with_surrogate = st.builds(lambda a, s, b: a + s + b, st.text(max_size=12), surrogate, st.text(max_size=12))
json_scalars = st.one_of(st.integers(-(10**6), 10**6), st.floats(allow_nan=False), st.booleans(), st.text(max_size=8))
containers = st.one_of(
    st.lists(json_scalars, max_size=3), st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)
)
not_strings = st.one_of(
    st.integers(),
    huge_ints,
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)
bad_texts = st.one_of(not_strings, with_surrogate)
bad_optional_texts = st.one_of(not_strings.filter(lambda v: v is not None), with_surrogate)
bad_voices = st.one_of(
    st.integers(), st.floats(allow_nan=True), st.booleans(), st.text(max_size=10), st.lists(st.text())
)
bad_speeds = st.one_of(
    huge_ints,
    st.text(max_size=8),
    st.booleans(),
    containers,
    st.just(math.nan),
    st.floats(max_value=0.2499),
    st.floats(min_value=4.0001),
)
bad_volumes = st.one_of(
    huge_ints,
    st.text(max_size=8),
    st.booleans(),
    containers,
    st.just(math.inf),
    st.floats(max_value=-0.0001),
    st.floats(min_value=2.0001),
)
bad_lengths = st.one_of(
    st.integers(max_value=-1),
    st.floats(),
    st.text(max_size=5),
    st.booleans(),
    containers,
    huge_ints,
    st.integers(MAX_EVENT + 1, 2**40),
)


@st.composite
def bad_synthesize(draw: Any) -> Case:
    data: dict[str, Any] = {"text": "Hello there.", "voice": {"name": "mum"}}
    field_name = draw(
        st.sampled_from(
            ["text", "voice", "voice.name", "voice.language", "voice.speaker", "speed", "volume", "missing text"]
        )
    )
    if field_name == "text":
        data["text"] = draw(st.one_of(bad_texts, st.none()))
    elif field_name == "missing text":
        del data["text"]
    elif field_name == "voice":
        data["voice"] = draw(bad_voices)
    elif field_name.startswith("voice."):
        data["voice"] = {**data["voice"], field_name[6:]: draw(bad_optional_texts)}
    else:
        data[field_name] = draw(bad_speeds if field_name == "speed" else bad_volumes)
    inline, ascii_only = draw(st.booleans()), draw(st.booleans())
    return Case(f"synthesize {field_name}", frame("synthesize", data, inline=inline, ascii_only=ascii_only), "error")


@st.composite
def bad_stream(draw: Any) -> Case:
    start = frame("synthesize-start", {"voice": {"name": "mum"}})
    stop = frame("synthesize-stop")
    how = draw(
        st.sampled_from(
            [
                "start voice",
                "start speed",
                "chunk text",
                "chunk missing",
                "too long",
                "start twice",
                "chunk first",
                "stop first",
            ]
        )
    )
    if how == "start voice":
        voice = draw(st.one_of(bad_voices, st.builds(lambda v: {"name": v}, bad_optional_texts)))
        return Case(how, frame("synthesize-start", {"voice": voice}) + stop, "error", stream=True)
    if how == "start speed":
        bad = {draw(st.sampled_from(["speed", "volume"])): draw(huge_ints | st.text(max_size=5) | containers)}
        return Case(how, frame("synthesize-start", {"voice": {"name": "mum"}, **bad}) + stop, "error", stream=True)
    if how == "chunk text":
        return Case(how, start + frame("synthesize-chunk", {"text": draw(bad_texts)}) + stop, "error", stream=True)
    if how == "chunk missing":
        data = draw(st.sampled_from([None, {}, {"txt": "hi"}]))
        return Case(how, start + frame("synthesize-chunk", data) + stop, "error", stream=True)
    if how == "too long":
        size = draw(st.integers(MAX_TEXT // 2 + 1, MAX_TEXT))
        piece = ("la " * size)[:size]
        chunks = b"".join(frame("synthesize-chunk", {"text": piece}) for _ in range(MAX_TEXT // size + 1))
        return Case(how, start + chunks + stop, "error", stream=True)
    if how == "start twice":
        return Case(how, start + start + stop, "error", stream=True)
    if how == "chunk first":
        return Case(how, frame("synthesize-chunk", {"text": draw(st.text(max_size=20))}), "error")
    return Case(how, stop, "error")


@st.composite
def bad_framing(draw: Any) -> Case:
    how = draw(
        st.sampled_from(
            [
                "not json",
                "not an object",
                "bad length",
                "too large",
                "header utf-8",
                "deep nesting",
                "long number",
                "type",
                "data not object",
                "data part",
            ]
        )
    )
    if how == "not json":
        line = draw(st.one_of(st.binary(max_size=80), st.text(max_size=80).map(str.encode)).filter(_not_json_object))
        return Case(how, line.replace(b"\n", b" ") + b"\n", "error", fatal=None if b"\n" in line else True)
    if how == "not an object":
        value = draw(st.one_of(json_scalars, st.lists(json_scalars, max_size=3), st.none()))
        return Case(how, _dumps(value) + b"\n", "error", fatal=True)
    if how == "bad length":
        key = draw(st.sampled_from(["data_length", "payload_length"]))
        raw = frame("synthesize", None, **{key: draw(bad_lengths)}) + draw(st.binary(max_size=64))
        return Case(how, raw, "error", fatal=True)
    if how == "too large":
        filler = "x" * draw(st.integers(MAX_EVENT, MAX_EVENT + 5000))
        return Case(how, frame("describe", None, filler=filler), "error", fatal=True)
    if how == "header utf-8":
        bad = draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf5\x80\x80\x80", b"\xe2\x82", b"\x80"]))
        raw = b'{"type": "synthesize", "data": {"text": "a' + bad + b'b"}}\n'
        return Case(how, raw, "error", fatal=None)  # a UTF-8-encoded surrogate reaches the text check instead
    if how == "deep nesting":
        depth = draw(st.integers(20000, 30000))
        return Case(how, b'{"type": "describe", "data": ' + b"[" * depth + b"]" * depth + b"}\n", "error", fatal=True)
    if how == "long number":
        digits = b"9" * draw(st.integers(5000, 20000))
        return Case(how, b'{"type": "synthesize", "n": ' + digits + b"}\n", "error", fatal=True)
    if how == "type":
        head = {"data_length": 2} if draw(st.booleans()) else {}
        value = draw(st.one_of(st.integers(), st.none(), st.booleans(), containers))
        body = b"{}" if head else b""
        drop = draw(st.booleans())
        line = _dumps({**({} if drop else {"type": value}), **head})
        return Case(how, line + b"\n" + body, "error")
    if how == "data not object":
        value = draw(st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2)))
        return Case(how, _dumps({"type": "synthesize", "data": value}) + b"\n", "error")
    body = draw(
        st.one_of(
            st.binary(max_size=40).filter(_not_json_object),
            st.sampled_from([b"[]", b"5", b'"text"', b"null", b"\xff\xfe{}", b'{"text": "\xed\xa0\x80"}']),
        )
    )
    return Case(how, _dumps({"type": "synthesize", "data_length": len(body)}) + b"\n" + body, "error")


def _not_json_object(raw: bytes) -> bool:
    try:
        return not isinstance(json.loads(raw.decode("utf-8", "surrogatepass")), dict)
    except (ValueError, RecursionError):
        return True


@st.composite
def unknown_events(draw: Any) -> Case:
    name = draw(
        st.one_of(
            st.text(max_size=30), st.sampled_from(["", "ping", "transcribe", "audio-chunk", "error", "x" * 60000])
        ).filter(lambda t: t not in KNOWN)
    )
    data = draw(st.one_of(st.none(), st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)))
    payload = draw(st.binary(max_size=64))
    raw = frame(name, data, inline=draw(st.booleans()), **({"payload_length": len(payload)} if payload else {}))
    return Case("unknown type", raw + payload, "ignored")


CASES = st.one_of(bad_synthesize(), bad_stream(), bad_framing(), unknown_events())


def check(port: int, case: Case) -> None:
    with Client(port) as client:
        client.send(case.raw)
        if case.expect == "ignored":
            client.event("describe")
            events = client.until("info")
            assert not [e for e in events if e.type == "error"], events
            return
        events = client.until("error")
        error = events[-1].data
        assert error.get("code") == "InvalidRequest" and isinstance(error.get("text"), str) and error["text"], error
        if case.fatal:
            assert client.is_closed()
            return
        if case.stream:
            assert [e.type for e in client.until("synthesize-stopped")] == ["synthesize-stopped"]
        try:
            spoken = client.speaks()
        except (AssertionError, OSError):
            if case.fatal is None:  # this one may or may not have closed the connection
                return
            raise
        assert spoken[-1].type == "audio-stop", f"{case.kind}: the connection stopped answering: {spoken}"


def test_hundreds_of_malformed_frames_each_get_an_error_and_the_server_carries_on(
    loop: LoopThread, service: SpeechService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    seen: Counter[str] = Counter()
    with serving(loop, service) as server:
        port = server.port
        assert port

        @hypothesis_settings(
            max_examples=640,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        )
        @given(case=CASES)
        def one(case: Case) -> None:
            check(port, case)
            seen[case.kind] += 1

        t0 = time.perf_counter()
        one()
        elapsed = time.perf_counter() - t0
        healthy(port)
        assert service.queue_depth == 0
    print(f"{sum(seen.values())} hostile cases in {elapsed:.1f} s: {dict(seen)}")
    assert sum(seen.values()) >= 600, seen
    # every family of trouble was tried
    families = (
        "synthesize text|synthesize missing text|synthesize voice|synthesize voice.name|synthesize speed|start voice|"
        "chunk text|chunk first|too long|start twice|not json|not an object|bad length|too large|deep nesting|type|"
        "data part|unknown type"
    )
    for kind in families.split("|"):
        assert seen[kind] > 0, seen
    assert elapsed < 120, elapsed
    # client mistakes are not faults: no tracebacks, nothing from asyncio, and a handful of lines for 640 cases
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records), caplog.text[-3000:]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[-3000:]
    assert len([r for r in caplog.records if r.name.startswith("voiceclone_core.wyoming.handler")]) <= 3


def test_specific_fields_get_named_errors(loop: LoopThread, service: SpeechService) -> None:
    """The probe's hangs (H1) and bare closes (H2): each gets an error that says what is wrong."""
    cases = [
        ({"text": 5}, "text must be a string, not a number"),
        ({"text": "caf\ud800e"}, "lone surrogate (U+D800)"),
        ({}, "synthesize needs a text"),
        ({"text": "Hi.", "voice": 5}, "voice must be an object"),
        ({"text": "Hi.", "voice": {"name": ["mum"]}}, "voice.name must be a string, not an array"),
        ({"text": "Hi.", "voice": {"language": 5}}, "voice.language must be a string"),
        ({"text": "Hi.", "voice": {"name": "mum", "speaker": {}}}, "voice.speaker must be a string"),
        ({"text": "Hi.", "speed": 10**400}, "speed is out of range"),
        ({"text": "Hi.", "volume": "loud"}, "volume must be a number, not a string"),
        ({"text": "Hi.", "speed": 9}, "speed must be a number from 0.25 to 4"),  # the service's range check
    ]
    with serving(loop, service) as server, Client(server.port) as client:
        for data, words in cases:
            client.event("synthesize", data)
            events = client.until("audio-stop", "error")
            assert [e.type for e in events] == ["error"], (data, events)
            assert words in events[0].data["text"] and events[0].data["code"] == "InvalidRequest", events[0].data
        client.event("synthesize-chunk", {"text": "early"})
        assert "without synthesize-start" in client.until("error")[0].data["text"]
        client.event("synthesize-stop")
        assert "without synthesize-start" in client.until("error")[0].data["text"]
        assert client.speaks()[-1].type == "audio-stop"  # the same connection still works


def test_streamed_text_is_capped_in_total(loop: LoopThread, service: SpeechService, engine: FakeEngine) -> None:
    engine.calls.clear()
    with serving(loop, service) as server, Client(server.port) as client:
        client.event("synthesize-start", {"voice": {"name": "mum"}})
        for _ in range(40):  # 40 × 30 = 1200 characters against a limit of 300
            client.event("synthesize-chunk", {"text": "The cat sat on the mat today. "})
        client.event("synthesize-stop")
        events = client.until("synthesize-stopped")
        errors = [e.data for e in events if e.type == "error"]
        assert len(errors) == 1 and errors[0]["code"] == "InvalidRequest", errors
        assert f"text too long: more than {MAX_TEXT} characters" in errors[0]["text"]
        assert sum(len(c) for c in engine.calls) <= MAX_TEXT
        assert client.speaks()[-1].type == "audio-stop"
        # a stream the service has already given up on (unknown voice) takes no more text than the limit either
        client.event("synthesize-start", {"voice": {"name": "ghost"}})
        assert client.until("error")[-1].data["code"] == "VoiceNotFoundError"
        for _ in range(200):
            client.event("synthesize-chunk", {"text": "Nobody is listening to this. "})
        client.event("describe")
        client.until("info")
        (connection,) = server.connections
        assert connection.stream_backlog <= MAX_TEXT // 29 + 1, connection.stream_backlog
        client.event("synthesize-stop")
        assert [e.type for e in client.until("synthesize-stopped")] == ["synthesize-stopped"]


# -- (b) length claims: refused before anything is buffered ------------------------------------------------------
def _rss_kb(key: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(key)


def test_huge_length_claims_are_refused_without_buffering(loop: LoopThread, service: SpeechService) -> None:
    junk = b"\x00" * (1 << 20)
    claims = {
        "payload_length": frame("audio-chunk", None, payload_length=2**31),
        "data_length": frame("synthesize", None, data_length=2**31),
        "header line": b'{"type": "synthesize", "x": "',  # ...and no end of line, ever
    }
    results = {}
    with serving(loop, service) as server:
        healthy(server.port)
        before = _rss_kb()
        with contextlib.suppress(OSError):  # resets the peak (Linux >= 4.0); without it the peak is since start
            Path("/proc/self/clear_refs").write_text("5")
        peak_before = _rss_kb("VmHWM")
        for name, head in claims.items():
            with Client(server.port) as client:
                sent = [0]

                def blast(client: Client = client, head: bytes = head, sent: list[int] = sent) -> None:
                    with contextlib.suppress(OSError):
                        client.send(head)
                        while sent[0] < 64 << 20:
                            client.send(junk)
                            sent[0] += len(junk)

                sender = threading.Thread(target=blast)
                t0 = time.perf_counter()
                sender.start()
                error = client.read()
                closed = client.is_closed()
                sender.join(30)
                results[name] = (error, closed, sent[0], time.perf_counter() - t0)
        after, peak = _rss_kb(), _rss_kb("VmHWM")
        healthy(server.port)
    for name, (error, closed, sent_bytes, took) in results.items():
        assert error is not None and error.type == "error", (name, error)
        assert "event too large" in error.data["text"] and error.data["code"] == "InvalidRequest", error.data
        assert closed and took < 10, (name, took)
        assert sent_bytes < 64 << 20, f"{name}: the server took all {sent_bytes} bytes"  # it hung up
    growth_mb = (after - before) / 1024
    peak_mb = (peak - max(before, peak_before)) / 1024
    accepted = {name: f"{r[2] / 2**20:.0f} MB" for name, r in results.items()}
    print(f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MB (+{growth_mb:.1f}), peak +{max(peak_mb, 0):.1f} MB")
    print(f"junk the kernel took before the server hung up: {accepted}")
    assert growth_mb < 20 and peak_mb < 20, (growth_mb, peak_mb)


# -- (c) idle and header timeouts ----------------------------------------------------------------------------------
def test_idle_connections_are_closed_quietly_but_not_while_waiting_for_audio(
    loop: LoopThread, service: SpeechService, engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="voiceclone_core.wyoming")
    with serving(loop, service, idle_timeout_s=1.0) as server:
        with Client(server.port) as idle:
            t0 = time.perf_counter()
            assert idle.is_closed()  # no error event: a quiet close
            took = time.perf_counter() - t0
        assert 0.8 < took < 3.5, took
        assert any("idle" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
        # waiting for audio that takes longer than the idle timeout is not idleness
        engine.delay = 1.6
        with Client(server.port) as patient:
            spoken = patient.speaks("Slow words.")
            assert spoken[-1].type == "audio-stop"
            engine.delay = 0.0
            assert patient.speaks()[-1].type == "audio-stop"


def test_a_slowloris_header_is_cut_off(loop: LoopThread, service: SpeechService) -> None:
    with serving(loop, service, header_timeout_s=1.0, idle_timeout_s=30.0) as server, Client(server.port) as client:
        stop = threading.Event()

        def drip() -> None:
            with contextlib.suppress(OSError):
                for byte in b'{"type": "describe", "data": {"padding": "' + b"x" * 100:
                    if stop.wait(0.25):
                        return
                    client.send(bytes([byte]))

        dripper = threading.Thread(target=drip)
        t0 = time.perf_counter()
        dripper.start()
        try:
            error = client.read()
            took = time.perf_counter() - t0
            closed = client.is_closed()
        finally:
            stop.set()
            dripper.join(5)
    assert error is not None and error.type == "error", error
    assert error.data["text"] == "event not complete within 1 s" and error.data["code"] == "InvalidRequest"
    assert closed and 0.9 < took < 3.5, took


# -- (d) allowed clients, (e) connections per client -----------------------------------------------------------
def test_allowed_clients_refuses_other_addresses_loopback_included(loop: LoopThread, service: SpeechService) -> None:
    with serving(loop, service, allowed_clients=["10.0.0.0/8"]) as server, Client(server.port) as client:
        client.event("describe")
        error = client.read()
        assert error is not None and error.type == "error", error
        assert error.data["text"].startswith("not allowed") and "127.0.0.1" in error.data["text"]
        assert error.data["code"] == "NotAllowed"
        assert client.is_closed()
    with serving(loop, service, allowed_clients=["10.0.0.0/8", "127.0.0.1"]) as server:
        healthy(server.port)


def test_connections_per_client_are_limited(loop: LoopThread, service: SpeechService) -> None:
    with serving(loop, service, max_connections_per_client=2) as server:
        first, second = Client(server.port), Client(server.port)
        try:
            for client in (first, second):
                client.event("describe")
                client.until("info")
            with Client(server.port) as third:
                error = third.read()
                assert error is not None and error.type == "error", error
                assert "too many connections from 127.0.0.1" in error.data["text"]
                assert error.data["code"] == "ServiceBusy"
                assert third.is_closed()
            with Client(server.port, source="127.0.0.2") as other:  # another address has its own count
                other.event("describe")
                assert other.until("info")[-1].type == "info"
            first.close()
            deadline = time.monotonic() + 5
            while server.gate.open.get(ipaddress.ip_address("127.0.0.1"), 0) > 1:
                assert time.monotonic() < deadline, server.gate.open
                time.sleep(0.02)
            with Client(server.port) as again:  # a freed place can be taken
                again.event("describe")
                assert again.until("info")[-1].type == "info"
        finally:
            first.close()
            second.close()
        assert all(n <= 2 for n in server.gate.open.values())


# -- (f) logging: throttled, no tracebacks for client mistakes --------------------------------------------------
def test_malformed_input_is_logged_throttled_without_tracebacks(
    loop: LoopThread, service: SpeechService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with serving(loop, service) as server:
        with Client(server.port) as client:
            for i in range(50):
                client.event("synthesize", {"text": i})
                assert client.until("error")[-1].type == "error"
        for _ in range(50):
            with Client(server.port) as client:
                client.send(b"{this is not json\n")
                assert client.until("error")[-1].data["code"] == "InvalidRequest"
                assert client.is_closed()
        lines = [r for r in caplog.records if r.name.startswith("voiceclone_core.wyoming")]
        assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]
        assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
        assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR], caplog.text
        # a minute later, the next line says how many were left out
        clock = server.throttle.clock
        server.throttle.clock = lambda: clock() + 61
        with Client(server.port) as client:
            client.event("synthesize", {"text": None})
            client.until("error")
        said = [r.getMessage() for r in caplog.records if r.name.startswith("voiceclone_core.wyoming")]
        assert len(said) == len(lines) + 1 and "and 99 more like it" in said[-1], said


def test_a_fault_of_ours_is_an_error_event_and_the_connection_goes_on(
    loop: LoopThread, service: SpeechService, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stream = service.stream

    def broken(request: Any) -> Any:
        if request.text == "Break.":
            raise RuntimeError("a bug")
        return real_stream(request)

    monkeypatch.setattr(service, "stream", broken)
    caplog.set_level(logging.INFO)
    with serving(loop, service) as server, Client(server.port) as client:
        for _ in range(5):
            events = client.speaks("Break.")
            assert [e.type for e in events] == ["error"] and events[0].data["code"] == "SynthesisError"
        assert client.speaks()[-1].type == "audio-stop"
    faults = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(faults) == 1 and faults[0].exc_info, [r.getMessage() for r in faults]  # one traceback, not five


def test_pipelined_requests_are_answered_in_order(loop: LoopThread, service: SpeechService, engine: FakeEngine) -> None:
    """More requests than may wait at once: reading pauses (back-pressure), nothing is lost or reordered."""
    engine.gate = threading.Event()  # hold the engine while the requests pile up
    with serving(loop, service) as server, Client(server.port, timeout=15) as client:
        raw = b"".join(
            frame("synthesize", {"text": f"Number {i}.", "voice": {"name": "mum"}} if i % 3 else {"text": i})
            for i in range(30)
        )
        client.send(raw)
        time.sleep(0.3)
        (connection,) = server.connections
        waiting = connection.pending
        engine.gate.set()
        answers = [client.until("audio-stop", "error")[-1].type for _ in range(30)]
    assert waiting == PIPELINE, waiting  # the rest stayed unread in the socket
    assert answers == ["error" if i % 3 == 0 else "audio-stop" for i in range(30)]


def test_a_client_that_stops_reading_is_disconnected(loop: LoopThread, service: SpeechService) -> None:
    service.settings.speech.max_text_chars = 5000
    try:
        with serving(loop, service, idle_timeout_s=1.0) as server:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            text = " ".join(["The quick brown fox jumps over the lazy dog."] * 100)
            sock.sendall(frame("synthesize", {"text": text, "voice": {"name": "mum"}}))  # ...and never read
            deadline = time.monotonic() + 10
            while not (server.gate.open and service.queue_depth):  # it is being answered
                assert time.monotonic() < deadline, "the request never started"
                time.sleep(0.01)
            t0 = time.monotonic()
            while server.gate.open or service.queue_depth:
                assert time.monotonic() < deadline, f"the stalled connection was kept: {server.gate.open}"
                time.sleep(0.05)
            took = time.monotonic() - t0
            sock.close()
            assert took > 0.9, took  # cut off by the write timeout (idle_timeout_s), not by anything else
            healthy(server.port)
    finally:
        service.settings.speech.max_text_chars = MAX_TEXT
