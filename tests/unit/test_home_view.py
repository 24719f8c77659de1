"""The Home tab stays valid Block Kit whatever the workspace: many personas, many people, long texts, any language."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot import i18n
from bot.core.i18n import speaking
from bot.core.personas import Persona
from bot.core.usage import Breakdown, UsageReport
from bot.slack.blocks import clip
from bot.slack.home import AdminFacts, HomeFacts, budget_modal, home_view

LIMITS = {"header": 150, "section": 3000, "context": 2000, "button": 75}
TODAY = date(2026, 11, 20)


@pytest.fixture(autouse=True)
def _babel() -> None:
    i18n.install("en")


def _texts(blocks: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for block in blocks:
        if block["type"] == "header":
            yield "header", block["text"]["text"]
        elif block["type"] == "section":
            yield "section", block["text"]["text"]
        elif block["type"] == "context":
            assert len(block["elements"]) <= 10
            for element in block["elements"]:
                yield "context", element["text"]
        elif block["type"] == "actions":
            assert len(block["elements"]) <= 25
            for element in block["elements"]:
                yield "button", element["text"]["text"]


def assert_valid(view: dict[str, Any]) -> None:
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    for kind, text in _texts(view["blocks"]):
        assert 0 < len(text) <= LIMITS[kind], (kind, len(text))
        assert text.count("```") % 2 == 0


def _report(people: int) -> UsageReport:
    rows = [
        Breakdown(key=f"U{i:05d}", requests=3, input_tokens=10, output_tokens=5, cost_usd=1.0) for i in range(people)
    ]
    channels = [
        Breakdown(key=f"C{i:05d}", requests=3, input_tokens=10, output_tokens=5, cost_usd=1.0) for i in range(50)
    ]
    return UsageReport(
        workspace_id="T1",
        start=TODAY.replace(day=1),
        end=TODAY,
        requests=people * 3,
        input_tokens=people * 10,
        output_tokens=people * 5,
        cache_write_tokens=0,
        cache_read_tokens=0,
        web_searches=0,
        cost_usd=float(people),
        cache_savings_usd=0.0,
        unpriced_requests=0,
        by_day=[],
        top_users=rows,
        top_channels=channels,
        top_models=[],
    )


def _facts(personas: int, *, admin: bool, description: str = "Reviews code carefully. " * 6) -> HomeFacts:
    catalog = [
        Persona(name=f"p{i:04d}", description=description[:150], prompt="x", emoji=":robot_face:")
        for i in range(personas)
    ]
    commands = [(f"/claude-tool{i} <{'x' * 200}>", "does a thing " * 30) for i in range(30)]
    return HomeFacts(
        bot_user_id="UBOT",
        personas=catalog,
        commands=commands,
        today=TODAY,
        now=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        mine=_report(1),
        admin=AdminFacts(spent_usd=1234.5, budget_usd=2000.0, month=_report(5000)) if admin else None,
    )


@pytest.mark.parametrize("locale", ["en-US", "ja-JP", "de-DE"])
def test_thousands_of_personas_and_people_still_fit_and_the_rest_is_counted(locale: str) -> None:
    with speaking(locale):
        view = home_view(_facts(2000, admin=True))
    assert_valid(view)
    text = str(view)
    assert "p0000" in text and "p1999" not in text
    assert view["blocks"][-2]["type"] == "actions"  # the admin buttons survive however many personas there are
    more = [b for b in view["blocks"] if b["type"] == "context" and "p0" not in str(b)]
    assert any(char.isdigit() for char in str(more))  # "…and 1,9xx more personas."


def test_a_small_workspace_shows_everything_and_admins_get_their_buttons() -> None:
    with speaking("en-US"):
        view = home_view(_facts(4, admin=True))
        plain = home_view(_facts(4, admin=False))
    assert_valid(view)
    assert_valid(plain)
    text = str(view)
    assert all(f"p{i:04d}" in text for i in range(4)) and "more personas" not in text
    assert "$1,234.50 of $2,000.00 (62%)" in text
    assert "home_cost_report" in text and "home_cost_report" not in str(plain)


def test_the_budget_form_is_prefilled_and_its_title_fits() -> None:
    with speaking("es-ES"):
        form = budget_modal(200.0, None)
    assert len(form["title"]["text"]) <= 24 and len(form["submit"]["text"]) <= 24
    month, user_day = form["blocks"]
    assert month["element"]["initial_value"] == "200" and "initial_value" not in user_day["element"]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("hello <@U012345678> there", 15, "hello…"),  # never half a mention
        ("word " * 20, 20, "word word word…"),
        ("```\n" + "x" * 50 + "\n```", 20, "```\n" + "x" * 12 + "…```"),  # a code block stays closed
    ],
)
def test_clip_cuts_safely(text: str, limit: int, expected: str) -> None:
    assert clip(text, limit) == expected
    assert len(clip(text, limit)) <= limit
