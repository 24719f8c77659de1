"""Every sentence the bot says, in one catalog: ids and English source texts (translations: bot/locales/*/*.po).

Import a message from here and render it with `bot.core.i18n.tr` (or `trn` for plurals) at the moment it is
shown, so it comes out in the language of the person it is shown to. Ids are stable and descriptive ("area.what");
change the English freely, but keep {placeholders} identical across languages (a test checks).
After editing, run the extract / update / compile commands in the README ("Adding a language").
"""

from bot.core.texts.answers import *  # noqa: F403
from bot.core.texts.commands import *  # noqa: F403
from bot.core.texts.common import *  # noqa: F403
from bot.core.texts.cost import *  # noqa: F403
from bot.core.texts.home import *  # noqa: F403
