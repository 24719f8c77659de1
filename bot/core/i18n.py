"""The translator port: message ids, the asker's locale and locale-aware numbers, without knowing Babel or Slack.

Every sentence the bot says is a `Text` declared in `bot.core.texts` (its id is the gettext msgctxt, its English
wording the msgid). Code renders one with `tr(text, **params)` in the locale of whoever the bot is talking to,
which a Slack listener sets with `use_locale` once it knows who that is (a context variable, so concurrent answers
for people with different languages never mix). The Babel-backed translator is installed at start-up
(`bot.i18n.install`); until then, and in core unit tests, English is spoken.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

DEFAULT_LOCALE = "en"
# CLDR date skeletons (https://unicode.org/reports/tr35/tr35-dates.html#availableFormats_appendItems): each
# locale orders and spells them its own way ("2026年11月", "noviembre de 2026"). Besides short/medium/long/full.
MONTH_YEAR = "yMMMM"  # November 2026
DAY_MONTH = "MMMMd"  # December 1
MONTH_DAY_NUMERIC = "MMdd"  # 12/1, chart rows
_ENGLISH_DATES = {
    MONTH_YEAR: "%B %Y",
    DAY_MONTH: "%B %-d",
    MONTH_DAY_NUMERIC: "%-m/%-d",
    "short": "%m/%d/%y",
    "medium": "%b %-d, %Y",
    "long": "%B %-d, %Y",
}


@dataclass(frozen=True, slots=True)
class Text:
    """One message: `id` is stable and descriptive ("persona.set"), `en` the English source, `plural` its plural."""

    id: str
    en: str
    plural: str | None = None


CATALOG: dict[str, Text] = {}
"""Every Text declared, by id: the tests check each against every shipped locale."""


def _t(msg_id: str, en: str) -> Text:
    """Declare a message (the extraction keyword `_t:1c,2`)."""
    return _declare(Text(msg_id, en))


def _n(msg_id: str, singular: str, plural: str) -> Text:
    """Declare a message with plural forms (the extraction keyword `_n:1c,2,3`); render it with `trn`."""
    return _declare(Text(msg_id, singular, plural))


def _declare(text: Text) -> Text:
    if text.id in CATALOG:
        raise ValueError(f"message id {text.id!r} is declared twice")
    CATALOG[text.id] = text
    return text


class Translator(Protocol):
    """What the core needs from a translation backend; `locale` is a Babel-style tag ("ja", "pt_BR")."""

    def gettext(self, locale: str, text: Text) -> str: ...

    def ngettext(self, locale: str, text: Text, n: int) -> str: ...

    def number(self, locale: str, value: float, decimals: int | None = None) -> str: ...

    def money(self, locale: str, usd: float) -> str: ...

    def percent(self, locale: str, share: float) -> str: ...

    def date(self, locale: str, day: date, form: str = "medium") -> str: ...

    def negotiate(self, slack_locale: str) -> str: ...

    def language_name(self, locale: str) -> str: ...


@dataclass
class _English:
    """The fallback: the source texts, US number formats. Used until a real translator is installed."""

    default: str = DEFAULT_LOCALE
    names: tuple[str, ...] = field(default=(DEFAULT_LOCALE,))

    def gettext(self, locale: str, text: Text) -> str:
        return text.en

    def ngettext(self, locale: str, text: Text, n: int) -> str:
        return text.en if n == 1 or text.plural is None else text.plural

    def number(self, locale: str, value: float, decimals: int | None = None) -> str:
        if decimals is not None:
            return f"{value:,.{decimals}f}"
        if isinstance(value, int):
            return f"{value:,}"
        return f"{value:,.3f}".rstrip("0").rstrip(".")  # as CLDR's default: at most three decimals

    def money(self, locale: str, usd: float) -> str:
        return f"${usd:.4f}" if 0 < abs(usd) < 0.01 else f"${usd:,.2f}"

    def percent(self, locale: str, share: float) -> str:
        return f"{share:.0%}"

    def date(self, locale: str, day: date, form: str = "medium") -> str:
        return day.strftime(_ENGLISH_DATES[form]) if form in _ENGLISH_DATES else day.isoformat()

    def negotiate(self, slack_locale: str) -> str:
        return self.default

    def language_name(self, locale: str) -> str:
        return "English"


_translator: Translator = _English()
_locale: contextvars.ContextVar[str] = contextvars.ContextVar("bot_locale", default="")


def install(translator: Translator) -> None:
    """Called once at start-up by the composition root."""
    global _translator
    _translator = translator


def translator() -> Translator:
    return _translator


def current_locale() -> str:
    """The locale of the person being spoken to, or the workspace default."""
    return _locale.get() or _translator.negotiate("")


def use_locale(slack_locale: str) -> str:
    """Speak `slack_locale` ("ja-JP") from here on in this task and the tasks it starts; returns the locale used."""
    chosen = _translator.negotiate(slack_locale)
    _locale.set(chosen)
    return chosen


@contextmanager
def speaking(slack_locale: str) -> Iterator[str]:
    """`use_locale` for a block only: for messages to someone other than the current asker (admin DMs)."""
    token = _locale.set(_translator.negotiate(slack_locale))
    try:
        yield _locale.get()
    finally:
        _locale.reset(token)


def tr(text: Text, /, **params: object) -> str:
    """`text` in the current locale with its {placeholders} filled."""
    return _translator.gettext(current_locale(), text).format(**params)


def trn(text: Text, n: int, /, **params: object) -> str:
    """The plural form for `n` (which fills `{n}`, locale-formatted), with the other placeholders filled."""
    locale = current_locale()
    return _translator.ngettext(locale, text, n).format(n=_translator.number(locale, n), **params)


def number(value: float, decimals: int | None = None) -> str:
    return _translator.number(current_locale(), value, decimals)


def money(usd: float) -> str:
    return _translator.money(current_locale(), usd)


def percent(share: float) -> str:
    return _translator.percent(current_locale(), share)


def language_name() -> str:
    """The current language, named in itself: "日本語", "español"."""
    return _translator.language_name(current_locale())


def fmt_date(value: date, form: str = "medium") -> str:
    return _translator.date(current_locale(), value, form)
