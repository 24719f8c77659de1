"""`pip install .` works anywhere: the wheel carries the shipped personas, and the installed `claude-slack-bot` starts
from an empty directory and answers a mention against the fakes. This is what the Dockerfile does (a regular, not
editable, install run from another folder), checked without Docker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import SIGNING_SECRET
from tests.e2e.helpers import wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackRequestSender, app_mention, event_callback

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PERSONAS = ["code_reviewer", "default", "sql_expert", "technical_writer"]

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "claude-slack-bot"

    def site_packages(self) -> Path:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        return self.venv / "lib" / version / "site-packages"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The project's wheel installed (no editable hook) into a fresh venv whose dependencies come from this one."""
    build = tmp_path_factory.mktemp("wheel")
    run = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*run, "wheel", "--no-deps", "--no-build-isolation", "-w", str(build), str(ROOT)],
                   check=True, timeout=300, cwd=build)  # fmt: skip
    (wheel,) = build.glob("claude_slack_bot-*.whl")
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True, timeout=120)
    installed = Installed(wheel, venv)
    # The dependencies are this venv's; a plain path line does not run the editable install's import hook.
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (installed.site_packages() / "dependencies.pth").write_text("\n".join(sorted(paths)) + "\n")
    subprocess.run([*run, "--python", str(installed.python), "install", "--no-deps", str(wheel)],
                   check=True, timeout=300)  # fmt: skip
    return installed


def test_the_wheel_carries_the_shipped_personas(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert sorted(n.removeprefix("bot/personas/").removesuffix(".md") for n in names if n.startswith("bot/personas/"))\
        == SHIPPED_PERSONAS  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bot_environment(
    slack: FakeSlack, claude: FakeAnthropic, redis_url: str, key_prefix: str, port: int
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": claude.base_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": key_prefix,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "METRICS_PORT": "0",  # a free one: tests run side by side
        "LOG_FORMAT": "text",
    }


async def wait_until_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while process.returncode is None:
            try:
                async with http.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"the installed bot exited with {process.returncode} before it was healthy")


async def test_the_installed_bot_starts_from_an_empty_directory_and_answers(
    installed: Installed,
    slack: FakeSlack,
    claude: FakeAnthropic,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    claude.script(TextReply("Hello from the wheel."))
    port = free_port()
    environment = bot_environment(slack, claude, redis_url, key_prefix, port)
    log = (tmp_path / "bot.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(installed.script), cwd=tmp_path, env=environment, stdout=log, stderr=log
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_healthy(url, process)
        sender = SlackRequestSender(url + "/slack/events", SIGNING_SECRET, fake_slack=slack)
        mention = app_mention("<@UBOT> hello")
        status, _ = await sender.send_event(event_callback(mention))
        await sender.close()
        assert status == 200
        await wait_for_reply(slack, "C0GENERAL", mention["ts"], "Hello from the wheel.")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await process.wait()
        log.close()
    output = (tmp_path / "bot.log").read_text()
    assert f"personas: {', '.join(SHIPPED_PERSONAS)}" in output
    assert "Traceback" not in output


def test_the_installed_package_is_the_one_that_ran(installed: Installed, tmp_path: Path) -> None:
    where = subprocess.run([str(installed.python), "-c", "import bot; print(bot.__file__)"], cwd=tmp_path,
                           check=True, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert where.stdout.strip().startswith(str(installed.site_packages()))


def test_a_missing_persona_set_stops_start_up_with_one_line(installed: Installed, tmp_path: Path) -> None:
    """Runs last in this module: it removes the installed personas."""
    for persona in (installed.site_packages() / "bot" / "personas").glob("*.md"):
        persona.unlink()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "SLACK_BOT_TOKEN": "xoxb-x",
        "SLACK_SIGNING_SECRET": "s",
        "ANTHROPIC_API_KEY": "k",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PORT": str(free_port()),
        "METRICS_PORT": "0",
    }
    result = subprocess.run([str(installed.script)], cwd=tmp_path, env=environment, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("claude-slack-bot: cannot start: no usable persona"), result.stderr
