"""Slack's assistant pane, through Bolt's Assistant: a greeting with the viewed channel's persona and its suggested
prompts, a title for each thread, and answers from the same core as everywhere else."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp, AsyncAssistant, AsyncBoltContext
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts
from slack_bolt.context.set_title.async_set_title import AsyncSetTitle
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.assistant import thread_title
from bot.core.i18n import tr
from bot.slack import incoming
from bot.slack.answering import answer_in_slack
from bot.slack.views import pane_greeting

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps


def register(app: AsyncApp, deps: SlackDeps) -> None:
    # No thread_context_store: Bolt's default one reads and edits the bot's first reply (hidden conversations.replies
    # and chat.update calls, slack.md §2.5); the pane's context is kept in Redis per workspace instead.
    assistant = AsyncAssistant()

    @assistant.thread_started
    async def started(
        payload: dict[str, Any],
        body: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
        set_suggested_prompts: AsyncSetSuggestedPrompts,
    ) -> None:
        workspace = incoming.workspace_of(context)
        await deps.directory.speak_to(
            client, workspace, str((payload.get("assistant_thread") or {}).get("user_id", ""))
        )
        pane_id, thread_ts, viewing = _thread(payload)
        greeting = await deps.pane.opened(workspace, pane_id, thread_ts, viewing)
        is_default = greeting.persona.name == deps.channel_personas.catalog.default_name
        text = pane_greeting(greeting.persona, greeting.viewing, is_default)
        await client.chat_postMessage(channel=pane_id, thread_ts=thread_ts, text=text)
        prompts = [{"title": prompt.title, "message": prompt.message} for prompt in greeting.prompts]
        with contextlib.suppress(SlackApiError):  # suggestions are a nicety; the greeting already invites a question
            await set_suggested_prompts(prompts=prompts, title=tr(texts.PANE_SUGGESTIONS_TITLE))

    @assistant.thread_context_changed
    async def moved(payload: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        pane_id, thread_ts, viewing = _thread(payload)
        await deps.pane.moved(incoming.workspace_of(context), pane_id, thread_ts, viewing)

    @assistant.user_message
    async def asked(
        payload: dict[str, Any],
        body: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
        set_title: AsyncSetTitle,
    ) -> None:
        if not incoming.is_answerable(payload) or payload.get("user") == context.bot_user_id:
            return
        async with deps.in_progress.track():  # from its first look-up: shutdown waits for an acked question
            workspace = incoming.workspace_of(context)
            place = incoming.thread_place(payload)
            message = incoming.to_message(payload, workspace, context.bot_user_id, thread_id=place.thread_ts or "")
            if not await deps.replies.is_following(message.key):
                # A new thread: it answers as the persona of the channel the person is viewing, and is named after
                # its first question.
                persona = await deps.pane.persona(workspace, place.channel_id, place.thread_ts or "")
                message = dataclasses.replace(message, persona=persona.name)
                with contextlib.suppress(SlackApiError):
                    await set_title(thread_title(message.text))
            await answer_in_slack(deps, client, message, place)

    app.assistant(assistant)


def _thread(payload: dict[str, Any]) -> tuple[str, str, str | None]:
    """(the pane's DM channel, the thread, the channel the person is viewing) of an assistant_thread event."""
    thread = payload.get("assistant_thread") or {}
    viewing = (thread.get("context") or {}).get("channel_id") or None
    return str(thread.get("channel_id") or ""), str(thread.get("thread_ts") or ""), viewing
