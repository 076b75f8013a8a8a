"""Fixtures for the Home Assistant integration: a real VoiceClone server process (embedded engine) on loopback.

Runs under `.venv-ha` (Python 3.13.0, pytest-homeassistant-custom-component 0.13.236 = HA 2025.4.4); the server runs
under the project's `.venv` (Python 3.11), as it would beside Home Assistant.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_socket

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Import our package before hass starts, or phcc's own testing_config/custom_components shadows it.
import custom_components.voiceclone  # noqa: E402,F401

SERVER_PYTHON = Path(os.environ.get("VOICECLONE_SERVER_PYTHON", ROOT / ".venv" / "bin" / "python"))


def server_env() -> dict[str, str]:
    """The environment for the project's CLI: ours, less the variables that are not its settings.

    ``VOICECLONE_*`` variables are settings to the server, which refuses unknown ones: the test-only override of the
    server interpreter must not reach it.
    """
    env = {k: v for k, v in os.environ.items() if k != "VOICECLONE_SERVER_PYTHON"}
    return {**env, "PYTHONWARNINGS": "ignore"}


SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. We should leave for the station at half past seven, "
    "before the rain starts. Please remember to water the plants and to feed the cat this evening. "
    "The washing machine is done, and the kitchen lights are still on."
)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None, socket_enabled: None) -> None:
    """Every test may load custom integrations and open sockets (phcc allows only 127.0.0.1)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def espeak(text: str, path: Path, voice: str = "en-us+f3") -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    return path


def voiceclone(*args: str) -> subprocess.CompletedProcess:
    """Run the project's CLI with the server interpreter."""
    return subprocess.run(
        [str(SERVER_PYTHON), "-m", "voiceclone_core.cli", *args],
        env=server_env(),
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def enroll_mum(data: Path, sample: Path) -> None:
    """Enroll the voice ``mum`` (English, with its transcript) into the data folder ``data``, through the CLI."""
    voiceclone(
        "enroll", "Mum", str(sample), "--id", "mum", "--consent", "Mum (test)", "--language", "en",
        "--transcript", SAMPLE_TEXT, "--data-dir", str(data),
    )  # fmt: skip


@dataclass
class Server:
    """A running `voiceclone serve`: Wyoming on ``port``, web API on ``web_port``."""

    host: str
    port: int
    web_port: int
    data: Path
    proc: subprocess.Popen | None = None
    settings: tuple[str, ...] = ()  # more ``section.key=value`` settings

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(SERVER_PYTHON),
                "-m",
                "voiceclone_core.cli",
                "serve",
                "--uri",
                f"tcp://{self.host}:{self.port}",
                "--no-zeroconf",
                "--data-dir",
                str(self.data),
                "--set",
                "web.enabled=true",
                "--set",
                f"web.host={self.host}",
                "--set",
                f"web.port={self.web_port}",
                *(arg for setting in self.settings for arg in ("--set", setting)),
            ],
            env=server_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        wait_port(self.port, self.proc)
        wait_port(self.web_port, self.proc)

    @property
    def token(self) -> str:
        """The web API's token (made privately in the data folder on the server's first start)."""
        return (self.data / "api_token").read_text().strip()

    @property
    def server_id(self) -> str:
        """The id the server made for itself on first start (its config entries are keyed on it)."""
        return (self.data / "server_id").read_text().strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def sample_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 15 s of speech (espeak-ng)."""
    return espeak(SAMPLE_TEXT, tmp_path_factory.mktemp("sample") / "mum.wav")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, sample_wav: Path) -> Iterator[Server]:
    """One VoiceClone server for the session with the voice ``mum`` enrolled (before it starts, through the CLI)."""
    if not SERVER_PYTHON.exists():
        pytest.skip(f"{SERVER_PYTHON} missing: run scripts/setup.sh")
    data = tmp_path_factory.mktemp("voiceclone-data")
    pytest_socket.enable_socket()  # phcc disables sockets before every test; this fixture outlives one test
    enroll_mum(data, sample_wav)
    srv = Server("127.0.0.1", free_port(), free_port(), data)
    srv.start()
    yield srv
    srv.stop()


def entry_data(server: Server) -> dict:
    from custom_components.voiceclone.const import CONF_WEB_PORT
    from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN

    return {CONF_HOST: server.host, CONF_PORT: server.port, CONF_WEB_PORT: server.web_port, CONF_TOKEN: server.token}


@pytest.fixture
async def loaded_entry(hass, server: Server):
    """A config entry for ``server``, set up (TTS entity ``tts.voiceclone_127_0_0_1_voices``)."""
    from custom_components.voiceclone.const import DOMAIN
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"VoiceClone ({server.host})",
        data=entry_data(server),
        unique_id=server.server_id,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry
