"""The Babel-backed translator: compiled gettext catalogs shipped in `bot/locales`, CLDR number and date formats.

Slack reports a person's language as a tag like "ja-JP" (`users.info` with `include_locale=true`, see
https://docs.slack.dev/reference/methods/users.info); it is matched to the closest shipped catalog ("ja"),
else the configured default. Catalogs are package data, read with importlib.resources so an installed wheel
finds them from any directory.
"""

from __future__ import annotations

import gettext
import logging
from datetime import date
from functools import cache
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import NullTranslations, Translations

from bot.core import i18n
from bot.core.i18n import Text

log = logging.getLogger(__name__)

DOMAIN = "messages"
SOURCE_LOCALE = "en"


def shipped_locales() -> tuple[str, ...]:
    """English (the source texts) plus every locale with a compiled catalog in the package."""
    root = resources.files("bot") / "locales"
    found = sorted(
        entry.name for entry in root.iterdir() if entry.is_dir() and (entry / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()
    )
    return (SOURCE_LOCALE, *[name for name in found if name != SOURCE_LOCALE])


@cache
def _catalog(locale: str) -> gettext.NullTranslations:
    if locale == SOURCE_LOCALE:
        return NullTranslations()
    mo = resources.files("bot") / "locales" / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with mo.open("rb") as handle:
        return Translations(handle, domain=DOMAIN)


@cache
def _four_decimals(locale: str) -> str:
    """The locale's own currency pattern ("¤#,##0.00", "#,##0.00 ¤") with four decimals instead of two."""
    pattern = str(Locale.parse(locale).currency_formats["standard"].pattern).split(";")[0]
    return pattern.replace("0.00", "0.0000", 1)


class BabelTranslator:
    """Implements core.i18n.Translator. Unknown or unshipped locales fall back to `default`."""

    def __init__(self, default: str = SOURCE_LOCALE) -> None:
        self.locales = shipped_locales()
        self.default = self._match(default) or SOURCE_LOCALE

    def gettext(self, locale: str, text: Text) -> str:
        return _catalog(locale).pgettext(text.id, text.en)

    def ngettext(self, locale: str, text: Text, n: int) -> str:
        return _catalog(locale).npgettext(text.id, text.en, text.plural or text.en, n)

    def number(self, locale: str, value: float, decimals: int | None = None) -> str:
        if decimals is None:
            return format_decimal(value, locale=locale)
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        return format_decimal(value, format=pattern, locale=locale)

    def money(self, locale: str, usd: float) -> str:
        """Amounts are in US dollars whatever the language; sub-cent spend keeps four decimals so it stays visible."""
        if 0 < abs(usd) < 0.01:
            return format_currency(usd, "USD", format=_four_decimals(locale), locale=locale, currency_digits=False)
        return format_currency(usd, "USD", locale=locale)

    def percent(self, locale: str, share: float) -> str:
        return format_percent(share, locale=locale)

    def date(self, locale: str, day: date, form: str = "medium") -> str:
        if form in ("short", "medium", "long", "full"):
            return format_date(day, format=form, locale=locale)
        return format_skeleton(form, day, locale=locale)

    def language_name(self, locale: str) -> str:
        name = Locale.parse(locale).get_display_name(locale) or locale
        return name[:1].upper() + name[1:]  # "Español", as a name stands on its own

    def negotiate(self, slack_locale: str) -> str:
        return self._match(slack_locale) or self.default

    def _match(self, tag: str) -> str | None:
        """ "ja-JP" -> "ja", "pt_BR" -> "pt_BR" if shipped, else "pt" if shipped; None when nothing fits."""
        if not tag:
            return None
        candidates = []
        try:
            parsed = Locale.parse(tag.replace("-", "_"))
            candidates += [str(parsed), parsed.language]
        except (ValueError, UnknownLocaleError):
            pass  # Slack's "es-LA" (Latin American Spanish) is no CLDR locale: its language still is
        candidates.append(tag.replace("-", "_").split("_")[0].lower())
        return next((candidate for candidate in candidates if candidate in self.locales), None)


def install(default_locale: str = SOURCE_LOCALE) -> BabelTranslator:
    """Make every `tr()` in the bot speak through the shipped catalogs."""
    translator = BabelTranslator(default_locale)
    if translator.default == SOURCE_LOCALE and not default_locale.lower().startswith(SOURCE_LOCALE):
        log.warning("DEFAULT_LOCALE %r has no catalog; speaking %r by default", default_locale, SOURCE_LOCALE)
    i18n.install(translator)
    return translator
