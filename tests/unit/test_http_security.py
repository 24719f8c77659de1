"""Pure pieces of the HTTP hardening: settings that refuse to start, log redaction by value, the body parser, the
response_url policy and COST_ADMINS scoping."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot import logs
from bot.intake import SlackVerifier, parse_body
from bot.metrics import SLACK_KINDS, slack_kind
from bot.settings import Settings, SettingsError, describe_validation_error, is_loopback
from bot.slack.admins import admins_for
from bot.slack.response_urls import ResponseUrlPolicy
from bot.storage.token_crypto import TokenCipher

BASE = {"anthropic_api_key": "k", "slack_bot_token": "xoxb-1", "slack_signing_secret": "s"}


def _problem(**values: object) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings(**{**BASE, **values}, _env_file=None).check_slack()  # type: ignore[arg-type]
    return str(caught.value)


def test_no_placeholder_signing_secret_exists_in_the_bot() -> None:
    package = Path(__file__).resolve().parents[2] / "bot"
    assert not [p for p in package.rglob("*.py") if "unused-in-socket-mode" in p.read_text()]


def test_metrics_off_loopback_need_a_token() -> None:
    problem = _problem(metrics_host="0.0.0.0")
    assert problem.startswith("METRICS_TOKEN:") and "0.0.0.0" in problem
    Settings(**BASE, metrics_host="0.0.0.0", metrics_token="t", _env_file=None).check_slack()  # type: ignore[arg-type]
    Settings(**BASE, metrics_host="::1", _env_file=None).check_slack()  # type: ignore[arg-type]
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and not is_loopback("metrics.internal")


def test_oauth_needs_a_token_encryption_key_and_a_bad_key_is_not_echoed() -> None:
    oauth = {"slack_bot_token": None, "slack_client_id": "1.2", "slack_client_secret": "cs"}
    assert _problem(**oauth).startswith("TOKEN_ENCRYPTION_KEY: required with OAuth")
    with pytest.raises(ValidationError) as caught:
        Settings(**BASE, token_encryption_key="not-a-key-SECRETISH", _env_file=None)  # type: ignore[arg-type]
    line = describe_validation_error(caught.value)
    assert line.startswith("TOKEN_ENCRYPTION_KEY:") and "SECRETISH" not in line
    good = TokenCipher.generate_key()
    keys = f"{good}, {TokenCipher.generate_key()}"
    Settings(**{**BASE, **oauth}, token_encryption_key=keys, _env_file=None).check_slack()  # type: ignore[arg-type]


def test_every_configured_secret_is_redacted_by_value() -> None:
    settings = Settings(
        anthropic_api_key="plain-anthropic-key-without-shape",
        slack_bot_token="xoxb-bot",
        slack_signing_secret="signing-secret-value",
        slack_client_secret="client-secret-value",
        metrics_token="metrics-token-value",
        redis_url="redis://:redis-password-value@127.0.0.1:6379/0",
        token_encryption_key=TokenCipher.generate_key(),
        _env_file=None,
    )  # type: ignore[call-arg]
    logs.add_secrets(settings.secret_values())
    line = " ".join(settings.secret_values()) + " and plain words"
    cleaned = logs.redact(line)
    assert cleaned.replace("[redacted]", "").split() == ["and", "plain", "words"]


def test_refresh_and_rotating_tokens_are_redacted_by_shape() -> None:
    text = "refresh xoxe-1-abcDEF123 and xoxe.xoxp-1-ghiJKL456 and xoxe.xoxb-1-mnoPQR789"
    assert logs.redact(text) == "refresh [redacted] and [redacted] and [redacted]"


def test_short_values_are_not_taken_for_secrets() -> None:
    logs.add_secrets(["abc", None, ""])
    assert logs.redact("abc is fine") == "abc is fine"


@pytest.mark.parametrize(
    ("body", "content_type", "ok"),
    [
        (b'{"type": "event_callback"}', "application/json", True),
        (b"[1, 2]", "application/json", False),
        (b'{"type": ', "application/json", False),
        (b'"\xff"', "application/json", False),
        (b"command=%2Fclaude-cost&text=", "application/x-www-form-urlencoded", True),
        (b"payload=%7B%22type%22%3A%22block_actions%22%7D", "application/x-www-form-urlencoded", True),
        (b"payload=%7Bbroken", "application/x-www-form-urlencoded", False),
        (b"payload=%22just-a-string%22", "application/x-www-form-urlencoded", False),
        (b"a&&b", "application/x-www-form-urlencoded", False),
    ],
)
def test_bodies_slack_could_not_have_sent_are_refused(body: bytes, content_type: str, ok: bool) -> None:
    assert (parse_body(body, content_type) is not None) is ok


def test_the_verifier_checks_the_raw_bytes_and_the_clock() -> None:
    verifier = SlackVerifier("secret", clock=lambda: 1_700_000_000.0)
    body = b"\xff not utf-8"
    signature = "v0=" + hmac.new(b"secret", b"v0:1700000000:" + body, hashlib.sha256).hexdigest()
    assert verifier.verified(body, "1700000000", signature)
    assert not verifier.verified(body + b"!", "1700000000", signature)
    assert not verifier.verified(body, "1699999000", signature)  # replayed from 16 minutes ago
    assert not verifier.verified(body, "1700000000", "v0=\u00e9")
    assert not verifier.verified(body, "\u0661" * 10, signature)  # digits, but not ASCII ones
    with pytest.raises(ValueError):
        SlackVerifier("")


def test_metric_kinds_are_a_fixed_set() -> None:
    assert slack_kind("app_mention") == "app_mention"
    assert slack_kind("anything-a-stranger-says") == "other"
    assert "rejected" in SLACK_KINDS


def test_response_urls_must_be_on_slacks_hooks_host() -> None:
    slack = ResponseUrlPolicy("https://slack.com/api/")
    assert slack.allows("https://hooks.slack.com/commands/T1/2/abc")
    assert not slack.allows("http://hooks.slack.com/commands/T1/2/abc")
    assert not slack.allows("https://hooks.slack.com.evil.example/x")
    assert not slack.allows("https://user:pw@hooks.slack.com/x")
    assert not slack.allows("https://attacker.example/hooks.slack.com")
    assert not slack.allows(None) and not slack.allows("")
    gov = ResponseUrlPolicy("https://slack-gov.com/api/")
    assert gov.allows("https://hooks.slack-gov.com/commands/T1/2/abc")
    fake = ResponseUrlPolicy("http://127.0.0.1:8080/api/")
    assert fake.allows("http://127.0.0.1:8080/response/1") and not fake.allows("http://localhost:8080/response/1")


def test_cost_admins_may_be_scoped_to_a_workspace() -> None:
    entries = ["U1", "T1:U2", "T2:U3", "E9:U4"]
    assert admins_for(entries, "T1") == {"U1", "U2"}
    assert admins_for(entries, "T2") == {"U1", "U3"}
    assert admins_for(entries, "E9") == {"U1", "U4"}


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "cs"}, "TOKEN_ENCRYPTION_KEY"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "METRICS_HOST": "0.0.0.0"}, "METRICS_TOKEN"),
    ],
)
def test_start_up_refuses_with_one_line_naming_the_setting(
    env: dict[str, str],
    setting: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.__main__ import main

    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {"ANTHROPIC_API_KEY": "k", "SLACK_SIGNING_SECRET": "s", **env}.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"claude-slack-bot: cannot start: {setting}:")
