"""A thread's earlier reads of other conversations, screened for whoever asks now.

Why: read_channel / read_thread results stay in the thread's history. A later participant who cannot see the
conversation they came from (a guest, a Slack Connect user, a non-member of a private channel) must not get its
text through a follow-up question. So before each answer, every such result is checked against the *current*
asker's access, and replaced by a short note when they lack it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from bot.core.conversation import ToolCallBlock, ToolResultBlock, Turn

READ_TOOLS = frozenset({"read_channel", "read_thread"})
HIDDEN_READ = (
    "[This earlier read of <#{channel}> is not shown: the person asking now cannot see that conversation. "
    "Do not repeat or guess what it said.]"
)

CanRead = Callable[[str], Awaitable[bool]]  # channel id -> may the current asker see it here


async def screen_foreign_reads(turns: Sequence[Turn], *, here: str, can_read: CanRead) -> tuple[list[Turn], list[int]]:
    """(turns with unreadable reads replaced by a note, indexes of the turns changed).

    A read of this very conversation (`here`) needs no check: the asker is in it. Each other channel is checked
    once per answer, whatever the number of reads of it.
    """
    targets: dict[str, str] = {}  # tool call id -> channel it read
    verdicts: dict[str, bool] = {}
    screened: list[Turn] = []
    changed: list[int] = []
    for index, turn in enumerate(turns):
        for block in turn.blocks:
            if isinstance(block, ToolCallBlock) and block.name in READ_TOOLS:
                targets[block.id] = _channel_of(block, here)
        blocks = []
        for block in turn.blocks:
            channel = targets.get(block.tool_call_id) if isinstance(block, ToolResultBlock) else None
            if isinstance(block, ToolResultBlock) and channel is not None and channel != here:
                if channel not in verdicts:
                    verdicts[channel] = await can_read(channel)
                if not verdicts[channel]:
                    block = block.model_copy(update={"text": HIDDEN_READ.format(channel=channel), "is_error": True})
            blocks.append(block)
        if any(new is not old for new, old in zip(blocks, turn.blocks, strict=True)):
            screened.append(turn.model_copy(update={"blocks": tuple(blocks)}))
            changed.append(index)
        else:
            screened.append(turn)
    return screened, changed


def read_channels(turns: Sequence[Turn]) -> set[str]:
    """The channels the turns' read tools named: what a fold keeps of them (`Fold.reads`), so a later asker who cannot
    see one of them is not shown the summary without its turns being read. A read naming no channel read this one."""
    return {
        _channel_of(block, "")
        for turn in turns
        for block in turn.blocks
        if isinstance(block, ToolCallBlock) and block.name in READ_TOOLS
    } - {""}


def _channel_of(call: ToolCallBlock, here: str) -> str:
    """The channel a read call named (id or <#C…|name> link), or this conversation's when it named none."""
    raw = call.input.get("channel") if isinstance(call.input, dict) else None
    if not isinstance(raw, str) or not raw.strip():
        return here
    return raw.strip().removeprefix("<#").split("|")[0].removesuffix(">")
