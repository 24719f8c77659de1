"""Slash commands and shortcuts: /claude-persona, /claude-tools, /claude-reset, tool commands, Review with Claude."""

from bot.core.i18n import _t

PERSONA_UNKNOWN = _t("persona.unknown", "There is no persona called “{name}”. Choose one of: {choices}.")
PERSONA_ADMINS_ONLY = _t("persona.admins_only", "Only workspace admins can change this channel's persona.")
PERSONA_SET = _t(
    "persona.set",
    "<@{user}> set this channel's persona to *{persona}* — {description}\n"
    "New threads use it; threads already running keep the persona they started with.",
)
PERSONA_LIST_HEADER = _t("persona.list_header", "This channel uses *{persona}*. Available personas:")
PERSONA_LIST_ACTIVE = _t("persona.list_active", " ← active here")
PERSONA_LIST_FOOTER = _t(
    "persona.list_footer",
    "Change it with `/claude-persona NAME`. Threads already running keep the persona they started with.",
)

TOOLS_COMMANDS_HEADING = _t("tools.commands_heading", "*Commands*")
TOOLS_PERSONA_COMMAND = _t("tools.persona_command", "show or set this channel's persona")
TOOLS_FOR_CLAUDE_HEADING = _t("tools.for_claude_heading", "*Tools Claude can use*")
TOOLS_ASKS_APPROVAL = _t("tools.asks_approval", " _(asks for your approval first)_")
TOOLS_MCP = _t("tools.mcp", " _(MCP)_")
COMMAND_USAGE = _t("command.usage", "Usage: `{command} {usage}`\n{description}")
COMMAND_TOOL_ERROR = _t("command.tool_error", "{command}: {error}")

RESET_DM = _t(
    "reset.dm", "Fresh start: I've forgotten our earlier conversation here. (Your usage history is unchanged.)"
)
RESET_THREAD_FORGOTTEN = _t(
    "reset.thread_forgotten", "Done: I've forgotten this thread's conversation. Mention me in it to start over."
)
RESET_NOTHING_STORED = _t(
    "reset.nothing_stored", "I had nothing stored for this thread, so there was nothing to forget."
)
RESET_CHANNEL_HINT = _t(
    "reset.channel_hint",
    "In a channel every thread is its own conversation. To clear one, use the message shortcut "
    "*Forget this thread* on any of its messages, or mention me with `reset` inside it.",
)
RESET_STORE_DOWN = _t(
    "reset.store_down",
    "My memory store is unreachable right now, so nothing was forgotten; please try again in a moment.",
)

REVIEW_NOTHING = _t("review.nothing", "That message has no text or code snippet to review.")
REVIEW_FILE_REFUSED = _t("review.file_refused", "“{name}”: {reason}")
