"""The add-on as the add-on store gets it: a plain clone builds, versions agree, the upstream linter's rules, the s6
services, and Supervisor discovery once the server answers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from voiceclone_core import addon
from voiceclone_core.cli import main
from voiceclone_core.config import Settings
from voiceclone_core.service import SpeechService, build_service
from voiceclone_core.web.app import start_web
from voiceclone_core.wyoming.server import WyomingServer

from .test_mqtt import HomeAssistantStub

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "addon"
S6 = ADDON / "rootfs" / "etc" / "s6-overlay" / "s6-rc.d"
REPOSITORY = yaml.safe_load((ROOT / "repository.yaml").read_text())["url"]


def config() -> dict[str, Any]:
    return yaml.safe_load((ADDON / "config.yaml").read_text())


def dockerfile_copies(dockerfile: str) -> list[str]:
    return [line.split()[1] for line in dockerfile.splitlines() if line.startswith(("COPY ", "ADD "))]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `git clone` of this repository's committed state: what the add-on store fetches."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    dest = tmp_path_factory.mktemp("store") / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    return dest


def test_a_clone_holds_every_file_the_addon_build_reads(clone: Path) -> None:
    """Supervisor builds addon/Dockerfile with addon/ as the only context: every COPY source must be in the clone's
    addon folder (nothing generated, nothing git-ignored, nothing outside the context)."""
    context = clone / "addon"
    dockerfile = (context / "Dockerfile").read_text()
    sources = dockerfile_copies(dockerfile)
    assert sources, "the Dockerfile copies nothing: it cannot run our scripts"
    for src in sources:
        assert not src.startswith(("/", "..")) and ".." not in Path(src).parts, f"{src} is outside the build context"
        assert (context / src).exists(), f"{src} is not in a clone of the repository"
    for name in ("config.yaml", "build.yaml", "DOCS.md", "README.md", "CHANGELOG.md", "icon.png", "logo.png"):
        assert (context / name).is_file(), name
    # Supervisor passes BUILD_FROM (build.yaml), BUILD_VERSION and BUILD_ARCH; the source defaults to the release tag
    assert re.search(r"^ARG BUILD_VERSION$", dockerfile, re.M)
    source = re.search(r"^ARG VOICECLONE_SOURCE=(\S+)$", dockerfile, re.M)
    assert source and source.group(1) == f"git+{REPOSITORY}@v${{BUILD_VERSION}}"
    for script in S6.rglob("*"):  # executables keep their mode in git (the image runs them as they are)
        if script.name in ("run", "finish"):
            assert os.access(context / script.relative_to(ADDON), os.X_OK), script


@pytest.mark.slow
def test_the_install_step_installs_the_release_tag_of_a_clone(clone: Path, tmp_path: Path) -> None:
    """The image's install step (addon/install.sh) against a local clone tagged as a release would be: the package
    it installs is the add-on's version. Dependencies come from this environment (no network in tests)."""
    version = config()["version"]
    subprocess.run(["git", "-C", str(clone), "tag", "-f", f"v{version}"], check=True, capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "VOICECLONE_SOURCE": f"git+file://{clone}@v{version}", "VENV": str(venv)}
    env["TORCH_INDEX_URL"] = "https://pypi.org/simple"  # PyTorch's own index is out of reach here; PyPI has the wheel
    proc = subprocess.run(
        ["bash", str(clone / "addon" / "install.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"installed {version} into {venv}" in proc.stdout
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import voiceclone_core, sys; print(voiceclone_core.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert installed.startswith(str(venv))  # the clone's package, not this checkout's
    bad = subprocess.run(["bash", str(clone / "addon" / "install.sh")], env={**env, "VOICECLONE_SOURCE": ""})
    assert bad.returncode != 0


def test_one_version_and_one_repository_everywhere() -> None:
    """The add-on version, the package version, the integration version and the install tag are one number; every
    link names the same repository."""
    version = config()["version"]
    pyproject = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    manifest = json.loads((ROOT / "custom_components" / "voiceclone" / "manifest.json").read_text())
    assert pyproject and pyproject.group(1) == version == manifest["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    changelog = (ADDON / "CHANGELOG.md").read_text()
    assert f"## {version}" in changelog, "CHANGELOG.md has no entry for the add-on's version"
    assert REPOSITORY.startswith("https://github.com/")
    assert config()["url"] == REPOSITORY
    assert manifest["documentation"].startswith(REPOSITORY) and manifest["issue_tracker"] == f"{REPOSITORY}/issues"


# The frenck/action-addon-linter rules that can be checked offline (its config.schema.json: these keys have
# defaults that must not be repeated; these are obsolete).
LINTER_DEFAULTS = {
    "startup": "application",
    "boot": "auto",
    "ingress_port": 8099,
    "ingress_entry": "/",
    "host_network": False,
    "hassio_role": "default",
    "apparmor": True,
    "stdin": False,
    "legacy": False,
    "audio": False,
    "advanced": False,
    "stage": "stable",
}


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_addon_linter_rules_and_store_images() -> None:
    c = config()
    for key, default in LINTER_DEFAULTS.items():
        assert c.get(key, object()) != default, f"'{key}' should be removed, it uses a default value"
    assert "watchdog" not in c  # obsolete: the Dockerfile's HEALTHCHECK replaces it
    assert "image" not in c  # built from the Dockerfile (no registry publishes images yet)
    assert c["url"].startswith("https://")
    assert _png_size(ADDON / "icon.png") == (128, 128)
    w, h = _png_size(ADDON / "logo.png")
    assert w <= 250 and h <= 100
    health = re.search(r"^HEALTHCHECK .*\n?.*CMD (.+)$", (ADDON / "Dockerfile").read_text(), re.M)
    assert health and "/api/health" in health.group(1) and str(addon.WEB_PORT) in health.group(1)


def test_s6_services_start_the_server_then_announce_it() -> None:
    assert (S6 / "voiceclone" / "type").read_text().strip() == "longrun"
    assert (S6 / "discovery" / "type").read_text().strip() == "oneshot"
    assert (S6 / "voiceclone" / "dependencies.d" / "base").is_file()
    assert (S6 / "discovery" / "dependencies.d" / "voiceclone").is_file()  # only after the server started
    assert {p.name for p in (S6 / "user" / "contents.d").iterdir()} == {"voiceclone", "discovery"}
    up = (S6 / "discovery" / "up").read_text().split()
    assert up == ["/etc/s6-overlay/s6-rc.d/discovery/run"]
    for script in ("voiceclone/run", "voiceclone/finish", "discovery/run"):
        assert os.access(S6 / script, os.X_OK), script
    # the container environment (SUPERVISOR_TOKEN) reaches the services
    assert (S6 / "voiceclone" / "run").read_text().startswith("#!/command/with-contenv bash")
    assert (S6 / "discovery" / "run").read_text().startswith("#!/command/with-contenv bash")


def _fake_voiceclone(tmp_path: Path, prepare_rc: int) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    fake = tmp_path / "voiceclone"
    fake.write_text(f'#!/usr/bin/env bash\necho "$@" >> {log}\n[ "$1" = addon-prepare ] && exit {prepare_rc}\nexit 0\n')
    fake.chmod(0o755)
    return fake, log


@pytest.mark.parametrize("prepare_rc", [0, 2])
def test_run_service_prepares_then_serves(tmp_path: Path, prepare_rc: int) -> None:
    fake, log = _fake_voiceclone(tmp_path, prepare_rc)
    env = {**os.environ, "VOICECLONE": str(fake), "OPTIONS": str(tmp_path / "o.json"), "SETTINGS": str(tmp_path / "v")}
    proc = subprocess.run(["bash", str(S6 / "voiceclone" / "run")], env=env, capture_output=True, text=True)
    calls = log.read_text().splitlines()
    assert calls[0] == f"addon-prepare --options {tmp_path / 'o.json'} --output {tmp_path / 'v'} -v"
    if prepare_rc == 0:
        assert proc.returncode == 0 and calls[1] == f"serve --config {tmp_path / 'v'}"
    else:  # bad options: the service fails (and finish stops the add-on) instead of serving half-configured
        assert proc.returncode == 2 and len(calls) == 1


def test_discovery_service_never_stops_the_addon(tmp_path: Path) -> None:
    """The base image halts the add-on when a oneshot fails: a discovery the Supervisor refused must not do that."""
    for rc in (0, 1):
        fake = tmp_path / "voiceclone"
        fake.write_text(f'#!/usr/bin/env bash\necho "$@" >> {tmp_path / "calls.log"}\nexit {rc}\n')
        fake.chmod(0o755)
        env = {**os.environ, "VOICECLONE": str(fake), "OPTIONS": str(tmp_path / "o.json"), "SETTINGS": "/x/v.yaml"}
        proc = subprocess.run(["bash", str(S6 / "discovery" / "run")], env=env, capture_output=True, text=True)
        assert proc.returncode == 0
        calls = (tmp_path / "calls.log").read_text().splitlines()
        assert calls[-1] == f"addon-discovery --config /x/v.yaml --options {tmp_path}/o.json -v"
        assert ("add the VoiceClone integration by hand" in proc.stderr) is (rc != 0)


@pytest.mark.parametrize(("code", "halts"), [(0, False), (256, False), (1, True), (2, True)])
def test_finish_stops_the_addon_when_the_server_fails(tmp_path: Path, code: int, halts: bool) -> None:
    halt = tmp_path / "halt"
    halt.write_text(f"#!/bin/sh\ntouch {tmp_path / 'halted'}\n")
    halt.chmod(0o755)
    env = {**os.environ, "EXIT_CODE_FILE": str(tmp_path / "exitcode"), "HALT": str(halt)}
    proc = subprocess.run(["sh", str(S6 / "voiceclone" / "finish"), str(code), "15"], env=env, capture_output=True)
    assert proc.returncode == 0
    assert (tmp_path / "halted").exists() is halts
    if halts:
        assert (tmp_path / "exitcode").read_text().strip() == str(code)


class RunningServer:
    """The Wyoming door and the web API of ``service`` on free loopback ports, in a thread of their own."""

    def __init__(self, service: SpeechService, wyoming_port: int = 0, web_port: int = 0) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.wyoming = WyomingServer(service, uri=f"tcp://127.0.0.1:{wyoming_port}")
        self.call(self.wyoming.start(zeroconf=False))
        self.web = self.call(start_web(service, "127.0.0.1", web_port))

    @property
    def ports(self) -> tuple[int, int]:
        return int(self.wyoming.port or 0), int(self.web.addresses[0][1])

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.call(self.web.cleanup())
        self.call(self.wyoming.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> Iterator[HomeAssistantStub]:
    stub = HomeAssistantStub()
    monkeypatch.setattr(addon, "SUPERVISOR", stub.url)
    monkeypatch.setenv("SUPERVISOR_TOKEN", "supervisor-token")
    yield stub
    stub.close()


@pytest.mark.parametrize("wyoming_too", [False, True])
def test_discovery_is_posted_once_the_server_answers(
    settings: Settings, fake_engine, supervisor: HomeAssistantStub, tmp_path: Path, wyoming_too: bool
) -> None:
    service = build_service(settings, engine=fake_engine)
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"wyoming_discovery": wyoming_too}))
    # reserve two ports, start announcing, and only then start the server on them
    probe = RunningServer(service)
    wyoming_port, web_port = probe.ports
    probe.close()
    args = ["addon-discovery", "--options", str(options), "--timeout", "30", "--data-dir", str(settings.data_dir)]
    args += ["--wyoming-port", str(wyoming_port), "--web-port", str(web_port)]
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(main(args)))
    worker.start()
    time.sleep(1.5)
    assert supervisor.requests == []  # nothing is announced while the server does not answer
    server = RunningServer(service, wyoming_port, web_port)
    try:
        worker.join(30)
        assert result == [0]
    finally:
        server.close()
        service.close()
    posted = [r["json"] for r in supervisor.requests]
    assert all(r["path"] == "/discovery" and r["auth"] == "Bearer supervisor-token" for r in supervisor.requests)
    assert [p["service"] for p in posted] == (["voiceclone", "wyoming"] if wyoming_too else ["voiceclone"])
    ours = posted[0]["config"]
    assert ours["server_id"] == service.server_id and ours["web_port"] == addon.WEB_PORT
    assert ours["token"] == service.api_token.current()  # the integration can use the API straight away
    assert re.fullmatch(rf"tcp://[^:/]+:{wyoming_port}", ours["uri"])
    if wyoming_too:
        assert posted[1]["config"] == {"uri": ours["uri"]}  # core Wyoming reads only the URI


def test_discovery_gives_up_with_a_clear_error(
    supervisor: HomeAssistantStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = tmp_path / "options.json"
    options.write_text("{}")
    args = ["addon-discovery", "--options", str(options), "--timeout", "1.5", "--wyoming-port", "9", "--web-port", "9"]
    assert main(args) == 1
    assert "did not answer on ports 9/9 within 2 s" in capsys.readouterr().err
    assert supervisor.requests == []


def test_a_refused_discovery_is_reported(settings: Settings, fake_engine, supervisor: HomeAssistantStub) -> None:
    service = build_service(settings, engine=fake_engine)
    supervisor.status = 403
    messages = addon.discovery_messages({"server_id": service.server_id, "version": "1"}, "addon-host")
    assert addon.announce("tok", messages) is False
    assert supervisor.requests[0]["json"]["config"]["uri"] == f"tcp://addon-host:{addon.WYOMING_PORT}"
    service.close()
