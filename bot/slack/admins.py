"""Who may see and change Claude's costs and budgets: COST_ADMINS, or a workspace admin as Slack says right now.

COST_ADMINS entries are user ids (`U123`: that person, in any workspace the bot serves) or workspace-scoped
(`T123:U123`: that person in that workspace only; `E123:U123` for an org-wide install). Slack's admin flag is
asked for afresh (users.info) every time: a cached "admin" outliving a demotion would keep the costs open to them.
"""

from __future__ import annotations

from collections.abc import Iterable

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.directory import Directory


def admins_for(entries: Iterable[str], workspace_id: str) -> set[str]:
    """The user ids COST_ADMINS names for one workspace."""
    users = set()
    for entry in entries:
        scope, _, user = entry.rpartition(":")
        if user and (not scope or scope == workspace_id):
            users.add(user)
    return users


async def may_manage_costs(
    directory: Directory, entries: Iterable[str], client: AsyncWebClient, workspace_id: str, user_id: str
) -> bool:
    if user_id and user_id in admins_for(entries, workspace_id):
        return True
    return bool(user_id) and await directory.is_admin_now(client, user_id)
