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


TOKEN_KEY = "dGVzdC10b2tlbi1lbmNyeXB0aW9uLWtleS0zMmJ5dGU="
OAUTH = {
    "anthropic_api_key": "k",
    "slack_signing_secret": "s",
    "slack_client_id": "123.456",
    "token_encryption_key": TOKEN_KEY,
}


def _slack_problem(**values: object) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings(**values, _env_file=None).check_slack()  # type: ignore[arg-type]
    return str(caught.value)


def test_oauth_needs_both_client_id_and_secret() -> None:
    assert _slack_problem(**OAUTH).startswith("SLACK_CLIENT_SECRET: missing")
    problem = _slack_problem(anthropic_api_key="k", slack_signing_secret="s", slack_client_secret="VERY-SECRET")
    assert problem.startswith("SLACK_CLIENT_ID: missing") and "VERY-SECRET" not in problem


def test_oauth_is_refused_in_socket_mode_and_beside_a_bot_token() -> None:
    oauth = {**OAUTH, "slack_client_secret": "cs"}
    assert _slack_problem(**oauth, slack_app_token="xapp-1").startswith("SLACK_APP_TOKEN:")
    assert _slack_problem(**oauth, slack_bot_token="xoxb-1").startswith("SLACK_BOT_TOKEN: set either")


def test_oauth_needs_no_bot_token_and_asks_for_the_manifests_scopes() -> None:
    settings = Settings(**OAUTH, slack_client_secret="cs", _env_file=None)  # type: ignore[arg-type]
    settings.check_slack()
    assert settings.oauth
    assert settings.bot_scopes(("chat:write", "commands")) == ["chat:write", "commands"]
    custom = Settings(**OAUTH, slack_client_secret="cs", slack_scopes="commands, chat:write", _env_file=None)  # type: ignore[arg-type]
    assert custom.bot_scopes(("files:read",)) == ["chat:write", "commands"]


def test_without_a_bot_token_or_an_oauth_app_the_message_offers_both() -> None:
    problem = _slack_problem(anthropic_api_key="k", slack_signing_secret="s")
    assert problem.startswith("SLACK_BOT_TOKEN: missing") and "SLACK_CLIENT_ID" in problem


def test_weekly_summary_channels_name_their_workspace_with_oauth() -> None:
    single = Settings(**REQUIRED, weekly_summary_channel="C1", _env_file=None)  # type: ignore[arg-type]
    assert single.weekly_summaries() == {None: "C1"}
    many = Settings(**OAUTH, slack_client_secret="cs", weekly_summary_channel="T1:C1, E2:C2", _env_file=None)  # type: ignore[arg-type]
    many.check_slack()
    assert many.weekly_summaries() == {"T1": "C1", "E2": "C2"}
    assert _slack_problem(**OAUTH, slack_client_secret="cs", weekly_summary_channel="C1").startswith(
        "WEEKLY_SUMMARY_CHANNEL:"
    )
    with pytest.raises(ValidationError) as caught:
        Settings(**REQUIRED, weekly_summary_channel="T1:C1,T1:C2", _env_file=None)  # type: ignore[arg-type]
    assert "WEEKLY_SUMMARY_CHANNEL" in describe_validation_error(caught.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"redis_cluster": True}, "REDIS_CLUSTER=true needs REDIS_URL"),
        ({"redis_cluster": True, "redis_url": "unix:///tmp/redis.sock"}, "REDIS_CLUSTER=true needs REDIS_URL"),
        ({"redis_cluster": True, "redis_url": "redis://:pw@node:6379/3"}, "only database 0"),
        ({"redis_key_prefix": "bot{1}:"}, "REDIS_KEY_PREFIX may not contain"),
    ],
)
def test_a_redis_cluster_needs_a_node_url_database_0_and_a_prefix_without_braces(
    overrides: dict[str, object], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ValidationError) as caught:
        Settings(**REQUIRED, **overrides, _env_file=None)  # type: ignore[arg-type]
    assert expected in str(caught.value) and "pw" not in describe_validation_error(caught.value)


def test_a_redis_cluster_seed_node_is_accepted() -> None:
    settings = Settings(**REQUIRED, redis_cluster=True, redis_url="rediss://:pw@node:6380", _env_file=None)  # type: ignore[arg-type]
    assert settings.redis_cluster
