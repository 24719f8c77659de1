"""Each person in their language (Slack's users.info locale), and the Home tab, through the real Bolt app."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, block_action, event_callback, new_ts, slash_command

JAPANESE, ADMIN = "U0JAPAN", "U0ADMIN"


def _people(slack: FakeSlack) -> None:
    slack.add_user(JAPANESE, name="hanako", display_name="Hanako", tz="Asia/Tokyo", locale="ja-JP")
    slack.add_user(ADMIN, name="grace", display_name="Grace", is_admin=True, locale="en-US")


async def _respond(running: RunningBot, slack: FakeSlack, command: str, text: str, user: str) -> dict[str, Any]:
    response_url = slack.new_response_url()
    status, _ = await running.sender.send_command(slash_command(command, text, user_id=user, response_url=response_url))
    assert status == 200
    for _ in range(250):
        posts = [p for p in slack.response_url_posts if p["url"] == response_url]
        if posts:
            return dict(posts[-1]["body"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"{command} {text!r} got no response")


async def _open_home(running: RunningBot, slack: FakeSlack, user: str) -> dict[str, Any]:
    before = len(slack.views)
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home", "event_ts": new_ts()}
    status, _ = await running.sender.send_event(event_callback(event))
    assert status == 200
    return await _next_view(slack, before, kind="home")


async def _next_view(slack: FakeSlack, before: int, *, kind: str) -> dict[str, Any]:
    for _ in range(250):
        views = [v for v in slack.views[before:] if v["type"] == kind]
        if views:
            return views[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} view was published")


def _text(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


async def test_a_japanese_user_gets_claude_persona_in_japanese_and_an_english_user_in_english(
    running: RunningBot, slack: FakeSlack
) -> None:
    _people(slack)
    japanese = await _respond(running, slack, "/claude-persona", "", JAPANESE)
    english = await _respond(running, slack, "/claude-persona", "", "U0USER")  # the fake's default: en-US
    assert japanese["text"].startswith("このチャンネルは *default* を使っています。利用できるペルソナ:")
    assert "`/claude-persona NAME` で変更できます" in japanese["text"]
    assert english["text"].startswith("This channel uses *default*. Available personas:")
    assert "code_reviewer" in japanese["text"] and "code_reviewer" in english["text"]  # persona names stay

    changed = await _respond(running, slack, "/claude-persona", "no_such_persona", JAPANESE)
    assert changed["text"].startswith("「no_such_persona」というペルソナはありません。")
    tools = await _respond(running, slack, "/claude-tools", "", JAPANESE)
    assert (
        tools["text"].startswith("*コマンド*") and "コード、差分、メッセージのリンクをコードレビュー" in tools["text"]
    )
    budget = await _respond(running, slack, "/claude-budget", "", JAPANESE)  # not an admin
    assert budget["text"] == "Claude の予算を確認・変更できるのはワークスペース管理者だけです。"


async def test_a_spanish_speaker_is_told_in_spanish_when_the_budget_is_spent(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    slack.add_user("U0SPAIN", name="lucia", display_name="Lucía", locale="es-LA")  # Slack's Latin American Spanish
    running = await start_bot(budget_month_usd=0.001)
    root = "1700000903.000100"
    await running.sender.send_event(event_callback(app_mention("hola", ts=root, user="U0SPAIN")))
    [reply] = await wait_for_reply(slack, "C0GENERAL", root, "se ha agotado")
    assert "El presupuesto de Claude de este espacio de trabajo" in reply.text
    assert claude.requests == []


async def test_the_home_tab_explains_the_bot_in_the_readers_language_without_admin_figures(
    running: RunningBot, slack: FakeSlack
) -> None:
    _people(slack)
    view = await _open_home(running, slack, JAPANESE)
    assert view["user_id"] == JAPANESE and view["type"] == "home"
    text = _text(view)
    assert "Slack の Claude" in text and "<@UBOT>" in text  # how to mention the bot
    assert "*sql_expert*" in text and "`/claude-persona [name]`" in text  # personas with descriptions, commands
    assert "日本語" in text  # their language
    assert "今月はまだ何も質問していません。" in text  # their usage this month: none yet
    assert "home_cost_report" not in text and "管理者)" not in text.split("*コマンド*")[0]  # no admin part


async def test_an_admin_sees_the_months_figures_and_the_buttons_open_the_report_and_a_budget_form(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    _people(slack)
    claude.script(TextReply("Here you go."))
    root = "1700000904.000100"
    await running.sender.send_event(event_callback(app_mention("hello", ts=root, user="U0USER")))
    await wait_for_reply(slack, "C0GENERAL", root, "Here you go.")

    view = await _open_home(running, slack, ADMIN)
    text = _text(view)
    assert "Workspace this month (admins)" in text and "*Spent:*" in text and "no monthly budget set" in text
    assert "<@U0USER>" in text and "<#C0GENERAL>" in text  # top users and channels
    assert "home_cost_report" in text and "home_budget" in text

    before = len(slack.views)
    status, _ = await running.sender.send_interaction(block_action("home_cost_report", value="month", user_id=ADMIN))
    assert status == 200
    modal = await _next_view(slack, before, kind="modal")
    assert modal["title"]["text"] == "Claude usage" and "Requests" in _text(modal)

    before = len(slack.views)
    await running.sender.send_interaction(block_action("home_budget", value="budget", user_id=ADMIN))
    form = await _next_view(slack, before, kind="modal")
    assert form["callback_id"] == "home_budget_modal"

    status, body = await running.sender.send_interaction(_submission(form, month="lots", user_day=""))
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    assert "budget_month" in json.loads(body)["errors"]

    before = len(slack.views)
    status, body = await running.sender.send_interaction(_submission(form, month="$250", user_day="5"))
    assert status == 200 and not body.strip()  # accepted: the modal closes
    refreshed = await _next_view(slack, before, kind="home")
    assert "of $250.00" in _text(refreshed)
    summary = await _respond(running, slack, "/claude-budget", "", ADMIN)
    assert "Monthly: $250.00" in summary["text"] and "Per person per day: $5.00" in summary["text"]


async def test_a_forged_budget_submission_from_a_non_admin_changes_nothing(
    running: RunningBot, slack: FakeSlack
) -> None:
    _people(slack)
    form = {"id": "V0FORGED", "callback_id": "home_budget_modal", "type": "modal"}
    status, body = await running.sender.send_interaction(_submission(form, month="999", user_day="", user=JAPANESE))
    assert status == 200 and json.loads(body)["errors"]["budget_month"].endswith("管理者だけです。")
    summary = await _respond(running, slack, "/claude-budget", "", ADMIN)
    assert "Monthly: no limit" in summary["text"]


async def test_a_workspace_with_many_personas_still_gets_a_valid_home_tab(
    start_bot: BotFactory, slack: FakeSlack, tmp_path: Path
) -> None:
    """The fake Slack rejects a view over 100 blocks or with an over-long text, as Slack does."""
    for index in range(300):
        (tmp_path / f"persona_{index:03d}.md").write_text(
            f"---\nname: persona_{index:03d}\ndescription: {'A thorough specialist. ' * 6}\n---\nYou help.\n"
        )
    _people(slack)
    running = await start_bot(personas_dir=tmp_path)
    view = await _open_home(running, slack, ADMIN)
    assert len(view["blocks"]) <= 100
    text = _text(view)
    assert "persona_000" in text and "persona_299" in text  # spread over as many sections as they need


def _submission(form: dict[str, Any], *, month: str, user_day: str, user: str = ADMIN) -> dict[str, Any]:
    """A view_submission payload for the budget form, as Slack sends it when Save is clicked."""
    values = {
        "budget_month": {"amount": {"type": "plain_text_input", "value": month or None}},
        "budget_user_day": {"amount": {"type": "plain_text_input", "value": user_day or None}},
    }
    return {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "fake-workspace"},
        "user": {"id": user, "username": "grace", "name": "grace", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "verification-token-unused",
        "trigger_id": "1337.42.abcd",
        "view": {**form, "team_id": "T0001", "app_id": "A0001", "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
