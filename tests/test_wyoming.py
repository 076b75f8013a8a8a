"""The Wyoming door over real TCP on 127.0.0.1, driven by the wyoming library's own client."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from voiceclone_core.config import Settings
from voiceclone_core.service import SpeechService
from voiceclone_core.wyoming.server import WyomingServer

from .conftest import PARAGRAPH, service_with
from .procs import CLI, QUIET_ENV, free_port, serve, wait_port


@contextlib.asynccontextmanager
async def serving(service: SpeechService) -> AsyncIterator[int]:
    server = WyomingServer(service, uri="tcp://127.0.0.1:0")
    await server.start(zeroconf=False)
    try:
        yield server.port
    finally:
        await server.stop()


async def read_until(client: AsyncTcpClient, stop_types: tuple[str, ...], timeout: float = 20) -> list[Event]:
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(client.read_event(), timeout)
        assert event is not None, f"connection closed after {[e.type for e in events]}"
        events.append(event)
        if event.type in stop_types:
            return events


def pcm_of(events: list[Event]) -> bytes:
    return b"".join(AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type))


@pytest.fixture
def service(settings: Settings, fake_engine, speech_wav: Path):
    settings.cache.enabled = False
    svc = service_with(settings, fake_engine, speech_wav, language="en_GB")
    yield svc
    if fake_engine.gate is not None:
        fake_engine.gate.set()
    svc.close()


def test_describe_lists_one_voice_per_enrolled_member_and_follows_changes(
    service: SpeechService, speech_wav: Path
) -> None:
    async def describe(port: int) -> Info:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            events = await read_until(client, ("info",))
            return Info.from_event(events[-1])

    async def scenario():
        async with serving(service) as port:
            first = await describe(port)
            service.enroll("Dad", speech_wav, consent="Dad")
            second = await describe(port)
            service.delete("mum")
            third = await describe(port)
            return first, second, third

    first, second, third = asyncio.run(scenario())
    program = first.tts[0]
    assert program.name == "voiceclone" and program.installed and program.supports_synthesize_streaming
    assert program.attribution.name and program.version
    assert [(v.name, v.description, v.languages) for v in program.voices] == [("mum", "Mum", ["en_GB", "zh"])]
    assert first.asr == [] and first.wake == []
    assert sorted(v.name for v in second.tts[0].voices) == ["dad", "mum"]
    assert [v.name for v in third.tts[0].voices] == ["dad"]


def test_synthesize_sends_one_fixed_format_response(service: SpeechService) -> None:
    async def scenario():
        async with serving(service) as port, AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(
                Synthesize(
                    text="The washing machine is done. Please hang up the clothes in the garden before it rains.",
                    voice=SynthesizeVoice(name="mum"),
                ).event()
            )
            return await read_until(client, ("audio-stop", "error"))

    events = asyncio.run(scenario())
    types = [e.type for e in events]
    assert types[0] == "audio-start" and types[-1] == "audio-stop"
    assert set(types[1:-1]) == {"audio-chunk"} and types.count("audio-start") == 1
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (16000, 2, 1)
    chunks = [AudioChunk.from_event(e) for e in events if e.type == "audio-chunk"]
    assert all((c.rate, c.width, c.channels) == (16000, 2, 1) for c in chunks)
    assert all(len(c.audio) <= 1024 * 2 for c in chunks)
    samples = np.frombuffer(pcm_of(events), dtype="<i2")
    assert len(samples) > 0.5 * 16000 and np.abs(samples).max() > 1000


def test_no_voice_uses_the_default_and_unknown_voice_is_an_error(service: SpeechService) -> None:
    async def scenario():
        async with serving(service) as port:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Synthesize(text="Hello there.").event())
                default = await read_until(client, ("audio-stop", "error"))
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Synthesize(text="Hello.", voice=SynthesizeVoice(name="nobody")).event())
                unknown = await read_until(client, ("audio-stop", "error"))
                # the connection stays usable after an error
                await client.write_event(Synthesize(text="Hi.", voice=SynthesizeVoice(name="mum")).event())
                after = await read_until(client, ("audio-stop", "error"))
            return default, unknown, after

    default, unknown, after = asyncio.run(scenario())
    assert default[-1].type == "audio-stop" and pcm_of(default)
    assert [e.type for e in unknown] == ["error"]
    err = Error.from_event(unknown[0])
    assert "nobody" in err.text and err.code == "VoiceNotFoundError"
    assert after[-1].type == "audio-stop" and pcm_of(after)


def test_languages_and_empty_text(service: SpeechService, fake_engine) -> None:
    async def scenario():
        async with serving(service) as port, AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="我有3个苹果。", voice=SynthesizeVoice(language="zh_CN")).event())
            zh = await read_until(client, ("audio-stop", "error"))
            await client.write_event(Synthesize(text="Bonjour.", voice=SynthesizeVoice(language="fr_FR")).event())
            fr = await read_until(client, ("audio-stop", "error"))
            # our extension: a voice name and a language together (the wyoming library sends one or the other)
            await client.write_event(
                Event("synthesize", {"text": "2 apples.", "voice": {"name": "mum", "language": "zh"}})
            )
            both = await read_until(client, ("audio-stop", "error"))
            await client.write_event(Synthesize(text="晚饭好了。", voice=SynthesizeVoice(name="mum")).event())
            detected = await read_until(client, ("audio-stop", "error"))
            await client.write_event(Synthesize(text=" ... ").event())
            empty = await read_until(client, ("audio-stop", "error"))
            return zh, fr, both, detected, empty

    zh, fr, both, detected, empty = asyncio.run(scenario())
    assert zh[-1].type == "audio-stop" and "我有三个苹果。" in fake_engine.calls  # language honoured
    assert [e.type for e in fr] == ["error"]  # a language the engine cannot speak is an error, named
    err = Error.from_event(fr[0])
    assert err.text == "language 'fr_FR' is not available; available: en, zh" and err.code == "LanguageUnavailable"
    assert both[-1].type == "audio-stop" and fake_engine.languages_used[-2] == "zh"
    assert detected[-1].type == "audio-stop" and fake_engine.languages_used[-1] == "zh"  # detected from the text
    assert [e.type for e in empty] == ["audio-start", "audio-stop"]


def test_speed_and_volume_extension_fields(service: SpeechService) -> None:
    """Our extension: speed changes the length (tempo), volume the level; bad values are errors, not ignored."""

    def synth(**extra) -> Event:
        event = Synthesize(text="The washing machine is done.", voice=SynthesizeVoice(name="mum")).event()
        return Event(type=event.type, data={**(event.data or {}), **extra})

    async def scenario():
        results = []
        async with serving(service) as port, AsyncTcpClient("127.0.0.1", port) as client:
            for extra in ({}, {"speed": 2.0}, {"volume": 0.5}, {"speed": "fast"}, {"speed": 9}):
                await client.write_event(synth(**extra))
                results.append(await read_until(client, ("audio-stop", "error")))
            await client.write_event(Event(type="synthesize-start", data={"voice": {"name": "mum"}, "speed": 2.0}))
            await client.write_event(SynthesizeChunk(text="The washing machine is done.").event())
            await client.write_event(SynthesizeStop().event())
            results.append(await read_until(client, ("synthesize-stopped",)))
        return results

    plain, fast, quiet, bad_type, out_of_range, streamed = asyncio.run(scenario())
    base = np.frombuffer(pcm_of(plain), dtype="<i2").astype(float)
    assert len(pcm_of(fast)) == pytest.approx(len(pcm_of(plain)) / 2, rel=0.1)
    assert len(pcm_of(streamed)) == pytest.approx(len(pcm_of(plain)) / 2, rel=0.1)
    quiet_samples = np.frombuffer(pcm_of(quiet), dtype="<i2").astype(float)
    assert np.abs(quiet_samples).max() == pytest.approx(np.abs(base).max() / 2, rel=0.05)
    assert [e.type for e in bad_type] == ["error"] and "speed" in Error.from_event(bad_type[0]).text
    assert [e.type for e in out_of_range] == ["error"] and "speed" in Error.from_event(out_of_range[0]).text


def test_streaming_synthesis_speaks_each_sentence_once_as_it_completes(service: SpeechService, fake_engine) -> None:
    pieces = [
        "Good evening. The front ",
        "door is open and the ",
        "garden lights are on. ",
        "Shall I turn them off",
        "?",
    ]

    async def scenario():
        async with serving(service) as port, AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="mum")).event())
            await client.write_event(SynthesizeChunk(text=pieces[0]).event())
            # the first sentence is complete: its audio arrives before any more text is sent
            early = await read_until(client, ("audio-chunk",))
            for piece in pieces[1:]:
                await client.write_event(SynthesizeChunk(text=piece).event())
            await client.write_event(Synthesize(text="".join(pieces), voice=SynthesizeVoice(name="mum")).event())
            await client.write_event(SynthesizeStop().event())
            rest = await read_until(client, ("synthesize-stopped",))
            # after the stream, an ordinary synthesize on the same connection works again
            await client.write_event(Synthesize(text="Done.", voice=SynthesizeVoice(name="mum")).event())
            after = await read_until(client, ("audio-stop",))
            return early, rest, after

    early, rest, after = asyncio.run(scenario())
    assert early[0].type == "audio-start" and pcm_of(early)
    assert fake_engine.calls[0] == "Good evening."
    spoken = " ".join(fake_engine.calls[:-1])
    assert spoken.count("garden lights") == 1  # the compatibility synthesize was not spoken again
    assert "Shall I turn them off?" in spoken
    types = [e.type for e in early + rest]
    assert types[-1] == "synthesize-stopped" and "error" not in types
    assert types.count("audio-start") == types.count("audio-stop") == 1  # one group for the whole stream
    assert types.index("audio-stop") == len(types) - 2
    rates = {AudioChunk.from_event(e).rate for e in early + rest if e.type == "audio-chunk"}
    assert rates == {16000}
    assert fake_engine.calls[-1] == "Done." and pcm_of(after)


def test_streaming_with_unknown_voice_reports_one_error_then_stops(service: SpeechService) -> None:
    async def scenario():
        async with serving(service) as port, AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="ghost")).event())
            for piece in ("One. ", "Two. ", "Three."):
                await client.write_event(SynthesizeChunk(text=piece).event())
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, ("synthesize-stopped",))

    events = asyncio.run(scenario())
    assert [e.type for e in events] == ["error", "synthesize-stopped"]


def test_client_disconnect_mid_stream_frees_its_slot(service: SpeechService, fake_engine) -> None:
    fake_engine.delay = 0.1
    text = " ".join(f"This is sentence number {n}." for n in range(1, 21))

    async def scenario():
        async with serving(service) as port:
            client = AsyncTcpClient("127.0.0.1", port)
            await client.connect()
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="mum")).event())
            first = await client.read_event()
            await client.disconnect()  # hang up mid-stream
            await asyncio.sleep(0.5)
            calls_after_hangup = len(fake_engine.calls)
            async with AsyncTcpClient("127.0.0.1", port) as other:
                await other.write_event(Synthesize(text="Still working?", voice=SynthesizeVoice(name="mum")).event())
                answer = await read_until(other, ("audio-stop", "error"))
            return first, calls_after_hangup, answer

    first, calls_after_hangup, answer = asyncio.run(scenario())
    assert first is not None and first.type == "audio-start"
    assert calls_after_hangup < 10  # the rest of the 20 sentences was cancelled
    assert answer[-1].type == "audio-stop" and service.queue_depth == 0


def test_twenty_concurrent_clients_are_all_answered(service: SpeechService) -> None:
    service.settings.speech.queue_size = 32
    service.settings.wyoming.max_connections_per_client = 32  # all twenty come from 127.0.0.1

    async def one(port: int, i: int) -> bytes:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(
                Synthesize(text=f"Client number {i} says hello.", voice=SynthesizeVoice(name="mum")).event()
            )
            events = await read_until(client, ("audio-stop", "error"))
            assert events[-1].type == "audio-stop", Error.from_event(events[-1]).text
            return pcm_of(events)

    async def scenario():
        async with serving(service) as port:
            return await asyncio.gather(*(one(port, i) for i in range(20)))

    results = asyncio.run(scenario())
    assert len(results) == 20 and all(len(r) > 1000 for r in results)


def test_held_request_does_not_block_describe_and_busy_is_an_error(service: SpeechService, fake_engine) -> None:
    service.settings.speech.queue_size = 1

    async def scenario():
        async with serving(service) as port:
            slow = AsyncTcpClient("127.0.0.1", port)
            await slow.connect()
            fake_engine.gate = __import__("threading").Event()
            await slow.write_event(Synthesize(text="Hold on.", voice=SynthesizeVoice(name="mum")).event())
            while service.queue_depth < 1:
                await asyncio.sleep(0.01)
            t0 = time.perf_counter()
            async with AsyncTcpClient("127.0.0.1", port) as other:
                await other.write_event(Describe().event())
                info = await read_until(other, ("info",), timeout=2)
                await other.write_event(Synthesize(text="Me too.", voice=SynthesizeVoice(name="mum")).event())
                busy = await read_until(other, ("audio-stop", "error"), timeout=2)
            elapsed = time.perf_counter() - t0
            fake_engine.gate.set()
            done = await read_until(slow, ("audio-stop",))
            await slow.disconnect()
            return info, busy, elapsed, done

    info, busy, elapsed, done = asyncio.run(scenario())
    assert info[-1].type == "info" and elapsed < 2
    assert [e.type for e in busy] == ["error"] and Error.from_event(busy[0]).code == "ServiceBusy"
    assert done[-1].type == "audio-stop"


@pytest.mark.slow
def test_real_server_process_with_the_embedded_engine(tmp_path: Path, speech_wav: Path) -> None:
    """`voiceclone serve` as a process: enroll while it runs, describe, synthesize, stop on SIGTERM."""
    data = tmp_path / "data"
    port = free_port()
    proc = serve(data, port, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, proc)
        subprocess.run(
            [
                *CLI,
                "enroll",
                "Grandpa",
                str(speech_wav),
                "--transcript",
                PARAGRAPH,
                "--consent",
                "Grandpa",
                "--data-dir",
                str(data),
            ],
            check=True,
            capture_output=True,
            env=QUIET_ENV,
        )

        async def scenario():
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Describe().event())
                info = Info.from_event((await read_until(client, ("info",)))[-1])
                await client.write_event(
                    Synthesize(text="The washing machine is done.", voice=SynthesizeVoice(name="grandpa")).event()
                )
                events = await read_until(client, ("audio-stop", "error"), timeout=60)
            return info, events

        info, events = asyncio.run(scenario())
        assert [v.name for v in info.tts[0].voices] == ["grandpa"]
        start = AudioStart.from_event(events[0])
        assert (start.rate, start.width, start.channels) == (22050, 2, 1)
        assert events[-1].type == "audio-stop" and isinstance(AudioStop.from_event(events[-1]), AudioStop)
        assert len(pcm_of(events)) / 2 / 22050 > 1.0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_zeroconf_announces_wyoming_service_on_loopback(service: SpeechService) -> None:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    service.settings.wyoming.zeroconf_name = "voiceclone-test"
    service.settings.web.enabled, service.settings.web.port = True, 8123

    async def scenario():
        server = WyomingServer(service, uri="tcp://127.0.0.1:0")
        await server.start(zeroconf=True)
        browser = AsyncZeroconf(interfaces=["127.0.0.1"])
        try:
            info = AsyncServiceInfo("_wyoming._tcp.local.", "voiceclone-test._wyoming._tcp.local.")
            found = await info.async_request(browser.zeroconf, 3000)
            return found, info.port, info.parsed_addresses(), server.port, info.decoded_properties
        finally:
            await browser.async_close()
            await server.stop()

    found, port, addresses, server_port, properties = asyncio.run(scenario())
    assert found and port == server_port and addresses == ["127.0.0.1"]
    # where our integration finds the voice API, and the id it keys its entry on (the same on every start)
    assert properties == {"web_port": "8123", "server_id": service.server_id}
    assert re.fullmatch(r"[0-9a-f]{32}", service.server_id)
    assert (service.settings.data_dir / "server_id").read_text().strip() == service.server_id


def test_slow_reader_does_not_block_other_clients(service: SpeechService) -> None:
    long_text = " ".join(["The quick brown fox jumps over the lazy dog again and again."] * 70)  # ~45 s of audio

    async def scenario():
        async with serving(service) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
            writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            event = Synthesize(text=long_text, voice=SynthesizeVoice(name="mum")).event()
            await async_write_event(event, writer)  # ...and then never read
            await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            async with AsyncTcpClient("127.0.0.1", port) as other:
                await other.write_event(Synthesize(text="Quick answer.", voice=SynthesizeVoice(name="mum")).event())
                answer = await read_until(other, ("audio-stop", "error"), timeout=5)
            elapsed = time.perf_counter() - t0
            slow_first = await asyncio.wait_for(async_read_event(reader), 5)  # the slow client still gets its audio
            writer.close()
            return answer, elapsed, slow_first

    answer, elapsed, slow_first = asyncio.run(scenario())
    assert answer[-1].type == "audio-stop" and pcm_of(answer)
    assert elapsed < 2.0
    assert slow_first is not None and slow_first.type == "audio-start"


def test_a_client_that_resets_after_an_error_leaves_no_traceback(service: SpeechService) -> None:
    """Home Assistant drops the connection after an error event; the server must take that quietly."""
    import gc

    problems: list[dict] = []

    async def scenario() -> list[str]:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: problems.append(context))
        async with serving(service) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await async_write_event(Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event(), writer)
            error = await asyncio.wait_for(async_read_event(reader), 10)
            sock = writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            writer.transport.abort()
            await asyncio.sleep(0.3)
            gc.collect()
            await asyncio.sleep(0.1)
            async with AsyncTcpClient("127.0.0.1", port) as client:  # the server carries on
                await client.write_event(Synthesize(text="Still here.", voice=SynthesizeVoice(name="mum")).event())
                after = await read_until(client, ("audio-stop", "error"))
        return [error.type if error else "", after[-1].type]

    assert asyncio.run(scenario()) == ["error", "audio-stop"]
    assert not [p for p in problems if isinstance(p.get("exception"), ConnectionError)], problems


def test_a_server_on_loopback_is_not_announced(service: SpeechService) -> None:
    """zeroconf on (the default) but bound to 127.0.0.1: announcing an address nobody else can reach is skipped."""
    service.settings.wyoming.zeroconf = True

    async def scenario() -> bool:
        server = WyomingServer(service, uri="tcp://127.0.0.1:0")
        await server.start()
        try:
            return server._zeroconf is None
        finally:
            await server.stop()

    assert asyncio.run(scenario())
