"""`claude-slack-bot chat`: the same core (persona, Redis history, streaming) in a terminal, without Slack.

Persona authors iterate here; it also proves the core does not depend on Slack.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import TextIO, assert_never

from bot.core.conversation import Asker, ChannelContext, ConversationKey, IncomingMessage
from bot.core.errors import BotError
from bot.core.events import (
    ApprovalRequested,
    ApprovalSettled,
    AttemptRestarted,
    Notice,
    ReplyDone,
    ReplyEvent,
    TextDelta,
    ThinkingStarted,
    ToolRunning,
    Waiting,
)
from bot.settings import Settings
from bot.wiring import build_core

TERMINAL_FORMATTING = "Your answer is shown in a terminal: plain Markdown, no HTML."
WORKSPACE = "terminal"


async def chat(
    settings: Settings,
    persona_name: str,
    *,
    session: str | None = None,
    provider: str | None = None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> int:
    """Read a line, stream the answer, repeat until EOF or /quit. `session` resumes an earlier conversation;
    `provider` talks through that one provider (e.g. to check its credentials from a terminal)."""
    core = build_core(settings, provider=provider)
    await core.start()
    try:
        persona = core.personas.get(persona_name)
        if persona is None:
            print(f"Unknown persona “{persona_name}”. Available: {', '.join(core.personas.names())}", file=sys.stderr)
            return 2
        session = session or uuid.uuid4().hex[:8]
        channel_id = f"chat-{session}"
        await core.workspace_settings.set_channel_persona(WORKSPACE, channel_id, persona.name)
        replies = core.replies(TERMINAL_FORMATTING)
        where = f" through {provider}" if provider else ""
        stdout.write(f"Chatting with persona “{persona.name}”{where} (session {session}). Ctrl-D or /quit to leave.\n")
        loop = asyncio.get_running_loop()
        turn = 0
        while True:
            stdout.write("you> ")
            stdout.flush()
            line = await loop.run_in_executor(None, stdin.readline)
            if not line or line.strip() == "/quit":
                stdout.write("\n")
                return 0
            if not line.strip():
                continue
            turn += 1
            message = IncomingMessage(
                key=ConversationKey(WORKSPACE, channel_id, session),
                message_id=str(turn),
                user_id="terminal-user",
                text=line.strip(),
                asker=Asker(user_id="terminal-user", display_name="you"),
                channel=ChannelContext(name="terminal", kind="terminal"),
            )
            stdout.write(f"{persona.name}> ")
            try:
                async for event in replies.answer(message):
                    stdout.write(_shown(event, persona.name))
                    stdout.flush()
            except BotError as error:
                stdout.write(f"\n[{error.notice()}]\n")
    finally:
        await core.close()


def _shown(event: ReplyEvent, speaker: str) -> str:
    """What the terminal prints for one reply event; every kind is named, so a new one fails mypy here."""
    match event:
        case TextDelta():
            return event.text
        case AttemptRestarted():
            return f"\n[{event.reason} Retrying…]\n{speaker}> "
        case Notice():
            return f"\n[{event.text}]\n"
        case Waiting():
            return "\n[storage unreachable; waiting…]\n"
        case ReplyDone():
            return f"\n[{event.usage.input_tokens} in · {event.usage.output_tokens} out tokens]\n"
        case ThinkingStarted() | ToolRunning() | ApprovalRequested() | ApprovalSettled():
            return ""  # the terminal shows no status line and no approval prompt
        case _:
            assert_never(event)
