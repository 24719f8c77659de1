"""The shipped message catalogs: complete, faithful to the source texts' placeholders and Slack markup, compiled,
and in step with bot/core/texts (so a new sentence cannot ship untranslated)."""

from __future__ import annotations

import io
import re
import string
from datetime import date
from importlib import resources
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

import bot.core.texts  # noqa: F401  (declares every message)
from bot import i18n
from bot.core.i18n import CATALOG, MONTH_YEAR, Text, fmt_date, money, number, speaking, tr, trn

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "bot" / "locales"
SHIPPED = tuple(sorted(path.name for path in LOCALES.iterdir() if (path / "LC_MESSAGES" / "messages.po").is_file()))
KEYWORDS = {"_t": ((1, "c"), 2), "_n": ((1, "c"), 2, 3)}  # as README's `pybabel extract -k _t:1c,2 -k _n:1c,2,3`
EMOJI = re.compile(r":[a-z0-9_+\-]+:")
SLACK_TOKEN = re.compile(r"<[@#!][^>]*>")  # <@U…>, <#C…>, <!here>, as Slack parses them
CODE = re.compile(r"`[^`]*`")


def _po(locale: str) -> Catalog:
    with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=locale)


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def _entries(locale: str) -> list[tuple[str, list[str], list[str]]]:
    """(id, English forms, translated forms) for every message of a locale's catalog."""
    out = []
    for message in _po(locale):
        if not message.id:
            continue
        english = list(message.id) if isinstance(message.id, tuple) else [message.id]
        translated = list(message.string) if isinstance(message.string, tuple) else [message.string]
        out.append((str(message.context), english, translated))
    return out


def test_the_shipped_locales_are_found_as_package_data() -> None:
    assert {"ja", "es", "fr", "de"} <= set(SHIPPED)
    assert i18n.shipped_locales() == ("en", *SHIPPED)
    for locale in SHIPPED:
        assert (resources.files("bot") / "locales" / locale / "LC_MESSAGES" / "messages.mo").is_file()


@pytest.mark.parametrize("locale", SHIPPED)
def test_every_message_is_translated(locale: str) -> None:
    catalog = _po(locale)
    ids = {str(message.context) for message in catalog if message.id}
    assert ids == set(CATALOG), "run the README's extract/update commands and translate what is new"
    for message_id, _, translated in _entries(locale):
        assert all(form.strip() for form in translated), f"{locale}: {message_id} is not translated"
    assert not [m.context for m in catalog if m.id and m.fuzzy], f"{locale}: fuzzy entries need review"


@pytest.mark.parametrize("locale", SHIPPED)
def test_placeholders_markup_and_emoji_are_kept(locale: str) -> None:
    for message_id, english, translated in _entries(locale):
        wanted = set().union(*(_placeholders(form) for form in english))
        found = set().union(*(_placeholders(form) for form in translated))
        if len(english) > 1:
            # A singular form may say "one" in words instead of {n}; every other placeholder must be there.
            assert found <= wanted and wanted - {"n"} <= found, (locale, message_id, wanted, found)
            assert _placeholders(translated[-1]) == _placeholders(english[-1]), (locale, message_id)
        else:
            assert found == wanted, (locale, message_id, wanted, found)
        for source, form in zip([english[0]] + [english[-1]] * (len(translated) - 1), translated, strict=True):
            assert sorted(EMOJI.findall(form)) == sorted(EMOJI.findall(source)), (locale, message_id, "emoji")
            assert sorted(SLACK_TOKEN.findall(form)) == sorted(SLACK_TOKEN.findall(source)), (locale, message_id)
            assert form.count("`") == source.count("`"), (locale, message_id, "code spans")
            commands = [span for span in CODE.findall(source) if span.startswith("`/")]
            assert all(span in form for span in commands), (locale, message_id, "slash commands stay as typed")
            assert form.count("*") == source.count("*"), (locale, message_id, "bold")
            assert form.count("\n") == source.count("\n"), (locale, message_id, "line breaks")


@pytest.mark.parametrize("locale", SHIPPED)
def test_plural_messages_have_every_plural_form_of_the_language(locale: str) -> None:
    catalog = _po(locale)
    plurals = [message for message in catalog if message.id and isinstance(message.id, tuple)]
    assert {str(m.context) for m in plurals} == {t.id for t in CATALOG.values() if t.plural}
    for message in plurals:
        assert len(message.string) == catalog.num_plurals, (locale, message.context)


@pytest.mark.parametrize("locale", SHIPPED)
def test_the_compiled_catalog_is_current(locale: str) -> None:
    """The .mo shipped is what `pybabel compile` makes of the .po (README: "Adding a language")."""
    compiled = io.BytesIO()
    write_mo(compiled, _po(locale))
    compiled.seek(0)
    fresh = _messages(read_mo(compiled))
    with (LOCALES / locale / "LC_MESSAGES" / "messages.mo").open("rb") as handle:
        shipped = _messages(read_mo(handle))
    assert shipped == fresh, "run: pybabel compile -D messages -d bot/locales"


def _messages(catalog: Catalog) -> dict[tuple[str, str], tuple[str, ...]]:
    def forms(value: object) -> tuple[str, ...]:
        return tuple(value) if isinstance(value, list | tuple) else (str(value),)

    return {(str(m.context), forms(m.id)[0]): forms(m.string) for m in catalog if m.id}


def test_the_template_matches_what_the_code_declares() -> None:
    """messages.pot is the extraction of bot/core/texts with README's keywords; it names every declared Text."""
    extracted = {
        (context, message if isinstance(message, str) else message[0])
        for _, _, message, _, context in extract_from_dir(
            str(ROOT / "bot" / "core" / "texts"), keywords=KEYWORDS, comment_tags=()
        )
    }
    declared = {(t.id, t.en) for t in CATALOG.values()}
    assert extracted == declared
    with (LOCALES / "messages.pot").open("rb") as handle:
        template = {(str(m.context), m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(handle) if m.id}
    assert template == declared, "run the README's pybabel extract command"


def test_english_is_the_source_and_unknown_languages_fall_back_to_the_default() -> None:
    translator = i18n.BabelTranslator("en")
    assert translator.negotiate("ja-JP") == "ja"
    assert translator.negotiate("es-LA") == "es"
    assert translator.negotiate("fr-CA") == "fr"
    assert translator.negotiate("pt-BR") == "en"
    assert translator.negotiate("not a locale") == "en"
    assert i18n.BabelTranslator("de-DE").negotiate("ko-KR") == "de"


def test_plurals_numbers_money_and_dates_follow_the_locale() -> None:
    i18n.install("en")
    rows = Text("cost.export_uploaded", "", "")
    with speaking("en-US"):
        assert trn(CATALOG[rows.id], 1, filename="x.csv") == "Uploaded `x.csv` (1 row) to this channel."
        assert money(1234.5) == "$1,234.50" and number(1234567) == "1,234,567"
        assert fmt_date(date(2026, 11, 1), MONTH_YEAR) == "November 2026"
    with speaking("de-DE"):
        assert (
            trn(CATALOG[rows.id], 1234, filename="x.csv")
            == "`x.csv` (1.234 Zeilen) wurde in diesen Channel hochgeladen."
        )
        assert money(1234.5) == "1.234,50\xa0$"
        assert fmt_date(date(2026, 11, 1), MONTH_YEAR) == "November 2026"
    with speaking("fr-FR"):
        assert money(0.0012) == "0,0012\xa0$US"  # sub-cent spend stays visible
    with speaking("ja-JP"):
        assert fmt_date(date(2026, 11, 1), MONTH_YEAR) == "2026年11月"
        assert tr(CATALOG["persona.list_header"], persona="default").startswith("このチャンネルは *default*")
