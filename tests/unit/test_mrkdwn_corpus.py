"""The Markdown -> Slack corpus (tests/data/mrkdwn_corpus.yaml): what a user sees for each thing Claude writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.slack.mrkdwn import markdown_to_mrkdwn, split_markdown

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent.parent / "data" / "mrkdwn_corpus.yaml").read_text())


def test_corpus_covers_every_point_of_the_issue() -> None:
    assert len(CASES) >= 200
    items = {case["item"].split("-")[0] for case in CASES}
    assert {"1", "2", "3", "4", "5", "6", "7", "8", "9"} <= items


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['item']}" for i, c in enumerate(CASES)])
def test_corpus_case(case: dict[str, Any]) -> None:
    markdown = case["markdown"]
    if "limit" in case:
        pieces = split_markdown(markdown, case["limit"])
        assert [markdown_to_mrkdwn(piece) for piece in pieces] == case["slack"]
    else:
        assert markdown_to_mrkdwn(markdown, live=case.get("live", False)) == case["slack"]
