"""MQTT bridge timing with the embedded engine: message → first audio, message → play_media, broker reconnect.

Starts a private Mosquitto on loopback, a stand-in for Home Assistant's REST API, and the bridge with one
enrolled voice (festival slt, 16 sentences with transcript). Reported, median (min–max) over ``--runs``:

* first audio: as measured by the bridge from the command's arrival to the first synthesised chunk;
* message → play_media: from publishing ``voiceclone/speak`` to Home Assistant receiving the play_media call
  (whole rendering, WAV write and REST call included);
* reconnect: broker stopped for 1 s and started again → discovery re-published.

Run: ``python -m benchmarks.mqtt_latency`` (needs mosquitto: scripts/setup.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import corpus
from tests.test_mqtt import DISCOVERY, Broker, HomeAssistantStub, Running, Watcher
from voiceclone_core import audio
from voiceclone_core.config import load_settings
from voiceclone_core.homeassistant import HomeAssistantClient
from voiceclone_core.mqtt.bridge import MqttBridge
from voiceclone_core.service import build_service

TEXT = "The washing machine is done now."  # 6 words


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--reconnects", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Broker(tmp)
        broker.start()
        ha = HomeAssistantStub()
        settings = load_settings(overrides={"data_dir": str(tmp / "data"), "cache.enabled": "false"})
        settings.mqtt.host, settings.mqtt.port = "127.0.0.1", broker.port
        settings.homeassistant.url, settings.homeassistant.token = ha.url, "token"
        settings.homeassistant.media_dir = tmp / "media"
        service = build_service(settings)
        rec, sr, transcript = corpus.enrollment_recording("slt", Path(__file__).parent / "results" / "corpus", 16)
        service.enroll("Bench", audio.encode_wav(rec, sr), consent="benchmark (festival voice)", transcript=transcript)
        watcher = Watcher(broker.port)
        running = Running(MqttBridge(service, HomeAssistantClient.from_settings(settings)))
        try:
            watcher.wait("voiceclone/availability", lambda p: p == b"online")
            firsts, to_play = [], []
            for i in range(args.runs + 1):
                n_calls = len(ha.requests)
                sent = time.perf_counter()
                watcher.publish(
                    "voiceclone/speak",
                    json.dumps({"text": TEXT, "voice": "bench", "id": i, "target": "media_player.kitchen"}),
                )
                result = json.loads(
                    watcher.wait("voiceclone/speak/result", lambda p, i=i: f'"id": {i},'.encode() in p, timeout=30)
                )
                while len(ha.requests) == n_calls:
                    time.sleep(0.001)
                played = time.perf_counter() - sent
                if i == 0:
                    continue  # warm-up
                assert result["status"] == "done", result
                firsts.append(result["first_audio_s"])
                to_play.append(played)
            reconnects = []
            for _ in range(args.reconnects):
                broker.stop()
                time.sleep(1.0)
                broker.start()
                started = time.monotonic()
                watcher.wait(DISCOVERY, after=started, timeout=30)
                reconnects.append(time.monotonic() - started)
        finally:
            running.stop()
            watcher.close()
            service.close()
            ha.close()
            broker.stop()
    print(f"| 6-word text, {args.runs} runs | median (min–max) s |")
    print("|---|---|")
    print(f"| command → first audio (bridge) | {_fmt(firsts)} |")
    print(f"| publish → play_media received by Home Assistant | {_fmt(to_play)} |")
    print(f"| broker restart → discovery re-published ({args.reconnects} restarts) | {_fmt(reconnects)} |")


if __name__ == "__main__":
    main()
