"""Which persona a channel uses: list, show and change it (the rules, not the Slack command)."""

from __future__ import annotations

from bot.core import texts
from bot.core.errors import BotError
from bot.core.i18n import tr
from bot.core.personas import Persona, PersonaCatalog
from bot.core.ports import ChannelSettingsStore


class UnknownPersona(BotError):
    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(tr(texts.PERSONA_UNKNOWN, name=name, choices=", ".join(valid)))
        self.valid = valid


class ChannelPersonas:
    """A channel's persona is stored per workspace and channel; unknown or unset falls back to the default."""

    def __init__(self, catalog: PersonaCatalog, store: ChannelSettingsStore) -> None:
        self.catalog = catalog
        self._store = store

    async def current(self, workspace_id: str, channel_id: str) -> Persona:
        return self.catalog.resolve(await self._store.channel_persona(workspace_id, channel_id))

    async def choose(self, workspace_id: str, channel_id: str, name: str) -> Persona:
        persona = self.catalog.get(name.strip())
        if persona is None:
            raise UnknownPersona(name.strip(), self.catalog.names())
        await self._store.set_channel_persona(workspace_id, channel_id, persona.name)
        return persona
