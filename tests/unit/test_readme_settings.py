"""Operators configure the bot from README's table: every setting the bot reads is listed there."""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in README]
    assert missing == [], "add these to README.md's Settings table"
