"""Start-up settings: a wrong one stops the bot with one line naming it, and secrets are never echoed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from bot.settings import Settings, SettingsError, describe_validation_error, load_settings

REQUIRED = {"slack_bot_token": "xoxb-1", "anthropic_api_key": "k", "slack_signing_secret": "s"}


def test_defaults_are_sensible() -> None:
    settings = Settings(**REQUIRED, _env_file=None)  # type: ignore[arg-type]
    assert settings.slack_api_url == "https://slack.com/api/"
    assert not settings.socket_mode
    assert (settings.host, settings.port) == ("0.0.0.0", 3000)
    assert 1.0 <= settings.edit_interval_s <= 3.0


def test_api_url_gets_its_trailing_slash() -> None:
    settings = Settings(**REQUIRED, slack_api_url="http://127.0.0.1:9/api", _env_file=None)  # type: ignore[arg-type]
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


def test_a_malformed_value_names_the_setting_without_its_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(slack_bot_token="xoxp-USER-SECRET", anthropic_api_key="k", port=99999, _env_file=None)  # type: ignore[arg-type]
    line = describe_validation_error(caught.value)
    assert "SLACK_BOT_TOKEN" in line and "PORT" in line
    assert "USER-SECRET" not in line


def test_http_mode_without_a_signing_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # no .env here
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET"):
        load_settings()


def test_the_command_prints_one_line_and_exits_non_zero(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "CLAUDE_"))}
    env["SLACK_BOT_TOKEN"] = "xoxb-VERY-SECRET-VALUE"
    result = subprocess.run(
        [sys.executable, "-m", "bot"], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    output = (result.stdout + result.stderr).strip()
    assert output.count("\n") == 0
    assert "ANTHROPIC_API_KEY: missing" in output
    assert "VERY-SECRET" not in output


@pytest.mark.parametrize(("given", "expected"), [("on", "true"), ("OFF", "false"), ("auto", "auto"), (True, "true")])
def test_native_streaming_reads_the_usual_switch_words(given: object, expected: str) -> None:
    settings = Settings(**REQUIRED, slack_native_streaming=given, _env_file=None)  # type: ignore[arg-type]
    assert settings.slack_native_streaming == expected


def test_native_streaming_defaults_to_the_assistant_pane_and_refuses_other_words() -> None:
    assert Settings(**REQUIRED, _env_file=None).slack_native_streaming == "auto"  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as caught:
        Settings(**REQUIRED, slack_native_streaming="sometimes", _env_file=None)  # type: ignore[arg-type]
    assert "SLACK_NATIVE_STREAMING" in describe_validation_error(caught.value)
