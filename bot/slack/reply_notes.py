"""The notes under an answer's final text (notices, a failure): split across messages like the answer, never cut."""

from __future__ import annotations

from bot.slack.mrkdwn import markdown_to_mrkdwn, split_markdown

FAILURE_PREFIX = ":warning: "
NOTICE_PREFIX = ":information_source: "


def with_notes(rendered: list[str], notices: list[str], note: str | None, limit: int) -> list[str]:
    """`rendered` (the answer's messages) with the notes after it: each piece joins the last message when it fits,
    else starts a message of its own. A note longer than a message is split where the answer would be, so every
    word of it is shown (a notice may quote a file name of any length)."""
    pieces = [piece for notice in notices for piece in _pieces(notice, NOTICE_PREFIX, limit, render=True)]
    if note:
        pieces += _pieces(note, FAILURE_PREFIX, limit, render=False)
    out = list(rendered)
    for piece in pieces:
        if out and len(out[-1]) + len(piece) + 2 <= limit:
            out[-1] += "\n\n" + piece
        else:
            out.append(piece)
    return out


def _pieces(text: str, prefix: str, limit: int, *, render: bool) -> list[str]:
    """The note in message-sized pieces, the prefix on the first. A notice is Markdown (rendered); a failure note
    is shown as written, and splitting by its rendered length (never shorter) keeps each raw piece within `limit`."""
    room = max(1, limit - len(prefix))
    parts = split_markdown(text, room) if len(text) > room else [text]
    shown = [markdown_to_mrkdwn(part) if render else part for part in parts]
    return [prefix + shown[0], *shown[1:]] if shown else []
