"""A question kept with its answer's record, so the process that finishes a dead process's answer can ask it again.

An answer is live (bot/core/answers.py) from before its thread's lock is taken, so a question acked by Slack but still
waiting for its thread when its process died would otherwise be lost: Slack does not deliver an acked event again.
The record keeps what is needed to ask it again (not who asks or where: the record has those); asker and channel
details are looked up afresh, as for any question.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from bot.core.conversation import ConversationKey, IncomingFile, IncomingMessage, TextBlock, Turn

REPLAY_VERSION = 1
RECENT_TURNS = 50  # more than any exchange's tool rounds; a question further back is an old one


def replay_of(message: IncomingMessage) -> str:
    """What asking `message` again needs, as JSON; "" for a Regenerate (its question is stored already)."""
    if message.regenerates is not None:
        return ""
    files = [{"id": f.id, "name": f.name, "mimetype": f.mimetype, "size": f.size, "url": f.url} for f in message.files]
    asked = {"v": REPLAY_VERSION, "message_id": message.message_id, "text": message.text, "files": files}
    if message.persona is not None:
        asked["persona"] = message.persona
    return json.dumps(asked, separators=(",", ":"))


def message_from_replay(key: ConversationKey, user_id: str, replay: str) -> IncomingMessage | None:
    """The question again, as first asked; None when nothing (readable) was kept."""
    if not replay:
        return None
    try:
        asked = json.loads(replay)
        files = tuple(IncomingFile(**f) for f in asked.get("files", []))
        return IncomingMessage(
            key=key,
            message_id=str(asked["message_id"]),
            user_id=user_id,
            text=str(asked["text"]),
            files=files,
            persona=asked.get("persona"),
        )
    except (ValueError, TypeError, KeyError):
        return None


def question_stored(turns: Sequence[Turn], message: IncomingMessage) -> bool:
    """Whether the question reached history: a turn of its asker's, with its words, among the thread's last ones.

    Errs towards "stored" (the asker then gets the interrupted note and Regenerate) rather than asking twice: a
    message with files only, or words the asker wrote again later, count as stored.
    """
    words = message.text.strip()
    if not words:
        return True
    return any(
        turn.role == "user"
        and turn.author_id == message.user_id
        and any(isinstance(block, TextBlock) and block.text == words for block in turn.blocks)
        for turn in turns[-RECENT_TURNS:]
    )
