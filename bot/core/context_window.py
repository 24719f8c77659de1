"""Keeping a long thread inside the model's context window without losing what was said.

The request is measured before every call: the real size of the thread's previous call plus an estimate of
what was added since, or the provider's own token count when the estimate comes near the limit. Past a threshold
the oldest turns are folded, in one large chunk, into a running summary written by a cheap model; the first
message and the recent turns stay verbatim, and the full history stays in the store for `search_history`.
Folding in chunks keeps the cached prefix (system prompt, summary, early turns) stable between folds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.core.conversation import (
    Fold,
    MeasuredSize,
    MediaBlock,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
    Turn,
)
from bot.core.errors import ModelUnavailable
from bot.core.estimates import CHARS_PER_TOKEN, estimate_request_tokens, estimate_turn_tokens
from bot.core.ports import Attachment, ModelCatalog, ModelLimits, ModelRequest, TokenCounter

log = logging.getLogger(__name__)

# Token estimates live in estimates.py (one home, shared with budget reservations); re-exported for callers here.

FOLD_NOTE = (
    "[{count} earlier messages of this thread are folded into the summary in the system prompt. "
    "Use the search_history tool to look up their exact wording when someone refers back to them.]"
)

SUMMARY_INSTRUCTIONS = """You maintain the running summary of a long Slack thread between people and an AI \
assistant, so the assistant can continue the conversation after older messages are removed from its view.

Rewrite the existing summary (if any) together with the new transcript into ONE updated summary. Keep, precisely:
- facts, figures, names, identifiers, file names, links, code snippets that matter, and who said what;
- decisions made and their reasons; commitments and action items with their owner and due date;
- open questions, constraints, preferences and corrections people stated ("don't use X", "we are on version Y");
- what the assistant already answered or produced, briefly, so it does not repeat or contradict itself.
Drop pleasantries and repetition. Quote exact wording only when it matters (error messages, requirements).
Write in the language of the thread, as compact Markdown bullet points grouped under short headings.
Output only the summary."""


@dataclass(frozen=True, slots=True)
class ContextPolicy:
    """When to fold and how far; `token_limit` caps the window even for models with a larger one (cost)."""

    token_limit: int = 200_000
    fold_at: float = 0.7  # fold when the request passes this share of the usable window...
    fold_to: float = 0.4  # ...down to this share, so folds are rare and the cached prefix stays put
    keep_recent_turns: int = 6  # never fold the newest turns (three exchanges)
    count_above: float = 0.5  # below this share the estimate is trusted without asking the provider
    default_window: int = 200_000  # when the provider cannot tell us the model's window
    summary_max_tokens: int = 2_000
    summary_chunk_chars: int = 300_000  # what one summariser call reads (≈85k tokens, fits any cheap model)


def is_message_start(turn: Turn) -> bool:
    """A turn someone wrote (not a tool result): the only place a fold may end without splitting a tool call."""
    return turn.role == "user" and not any(isinstance(b, ToolResultBlock) for b in turn.blocks)


def apply_fold(turns: Sequence[Turn], fold: Fold | None) -> list[Turn]:
    """What the model sees: the first message, a note about the fold, then everything after the fold."""
    if fold is None or fold.upto <= 1 or fold.upto > len(turns):
        return list(turns)
    first = turns[0]
    note = TextBlock(text=FOLD_NOTE.format(count=fold.upto - 1))
    return [first.model_copy(update={"blocks": (*first.blocks, note)}), *turns[fold.upto :]]


def choose_fold_end(
    turns: Sequence[Turn],
    *,
    start: int,
    protected_from: int,
    keep_recent: int,
    tokens_to_drop: int,
    attachments: dict[str, Attachment] | None = None,
) -> int | None:
    """Where the next fold ends: the first message start after which enough tokens are gone.

    `protected_from` is the first turn of the answer in progress (never folded); the newest `keep_recent` turns
    stay too unless nothing else can be folded. Returns None when there is nothing to fold.
    """
    limit = min(protected_from, max(start + 1, len(turns) - keep_recent))
    candidates = [i for i in range(start + 1, limit + 1) if i < len(turns) and is_message_start(turns[i])]
    if not candidates and protected_from > start + 1 and is_message_start(turns[protected_from]):
        candidates = [protected_from]  # only the current exchange is left: fold everything before it
    if not candidates:
        return None
    dropped = 0
    previous = start
    for end in candidates:
        dropped += estimate_turn_tokens(turns[previous:end], attachments)
        previous = end
        if dropped >= tokens_to_drop:
            return end
    return candidates[-1]


def transcript(turns: Sequence[Turn], names: Callable[[str | None], str]) -> str:
    """Plain text of turns for the summariser and for history search: who said what, tools in brief."""
    lines: list[str] = []
    for turn in turns:
        speaker = "Assistant" if turn.role == "assistant" else names(turn.author_id)
        parts: list[str] = []
        for block in turn.blocks:
            if isinstance(block, TextBlock) and block.text.strip():
                parts.append(block.text.strip())
            elif isinstance(block, MediaBlock):
                parts.append(f"[{block.kind}: {block.name or 'unnamed'}]")
            elif isinstance(block, ToolCallBlock):
                parts.append(f"[used tool {block.name} {json.dumps(block.input)[:300]}]")
            elif isinstance(block, ToolResultBlock):
                parts.append(f"[tool result: {_clip(block.text, 600)}]")
        if parts:
            header = f"{turn.header}\n" if turn.header else ""
            lines.append(f"{speaker}: {header}" + "\n".join(parts))
    return "\n\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " […]"


def summary_request(model: str, previous: str, chunk: str, max_tokens: int) -> ModelRequest:
    body = (
        f"<existing_summary>\n{previous or '(none yet)'}\n</existing_summary>\n\n<transcript>\n{chunk}\n</transcript>"
    )
    return ModelRequest(
        model=model,
        max_tokens=max_tokens,
        system=(SUMMARY_INSTRUCTIONS,),
        turns=(Turn.user(body),),
    )


def split_transcript(text: str, max_chars: int) -> list[str]:
    """Pieces of at most `max_chars`, cut between messages where possible."""
    pieces: list[str] = []
    while len(text) > max_chars:
        cut = text.rfind("\n\n", 0, max_chars)
        cut = cut if cut > max_chars // 2 else max_chars
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        pieces.append(text)
    return pieces


Summarise = Callable[[ModelRequest], Awaitable[str]]


async def fold_summary(
    summarise: Summarise,
    *,
    model: str,
    previous: str,
    turns: Sequence[Turn],
    names: Callable[[str | None], str],
    policy: ContextPolicy,
) -> str:
    """The running summary extended by `turns`, read in pieces a cheap model can take."""
    summary = previous
    for piece in split_transcript(transcript(turns, names), policy.summary_chunk_chars):
        summary = (await summarise(summary_request(model, summary, piece, policy.summary_max_tokens))).strip()
    return summary


@dataclass(frozen=True, slots=True)
class HistoryHit:
    turn_index: int
    speaker: str
    excerpt: str


_WORD = re.compile(r"\w{2,}", re.UNICODE)


def search_turns(
    turns: Sequence[tuple[int, Turn]], query: str, *, limit: int = 5, excerpt_chars: int = 1_200
) -> list[HistoryHit]:
    """Folded turns that best match the query: a quoted phrase must appear; otherwise most query words win."""
    phrases = [p.lower() for p in re.findall(r'"([^"]+)"', query)]
    words = {w.lower() for w in _WORD.findall(re.sub(r'"[^"]+"', " ", query))}
    scored: list[tuple[float, int, Turn, str]] = []
    for index, turn in turns:
        text = "\n".join(part for part in _searchable(turn) if part)
        lowered = text.lower()
        if phrases and not all(p in lowered for p in phrases):
            continue
        hits = sum(1 for w in words if w in lowered)
        if not phrases and hits == 0:
            continue
        anchor = phrases[0] if phrases else next(w for w in words if w in lowered)
        scored.append((len(phrases) * 10 + hits, index, turn, _excerpt(text, lowered.find(anchor), excerpt_chars)))
    scored.sort(key=lambda item: (-item[0], -item[1]))
    return [
        HistoryHit(
            index, "assistant" if turn.role == "assistant" else (turn.header or turn.author_id or "someone"), excerpt
        )
        for _, index, turn, excerpt in sorted(scored[:limit], key=lambda item: item[1])
    ]


@dataclass(frozen=True, slots=True)
class FoldedTurns:
    """The folded part of one thread, searchable by the search_history tool during one answer."""

    turns: tuple[tuple[int, Turn], ...]

    @classmethod
    def of(cls, turns: Sequence[Turn], fold: Fold | None) -> FoldedTurns | None:
        if fold is None or fold.upto <= 1:
            return None
        return cls(tuple((i, turns[i]) for i in range(1, min(fold.upto, len(turns)))))

    def search(self, query: str, *, limit: int) -> list[HistoryHit]:
        return search_turns(self.turns, query, limit=limit)


def _searchable(turn: Turn) -> list[str]:
    parts: list[str] = [turn.header or ""]
    for block in turn.blocks:
        if isinstance(block, (TextBlock, ToolResultBlock)):
            parts.append(block.text)
        elif isinstance(block, MediaBlock):
            parts.append(f"[{block.kind}: {block.name}]")
    return parts


def _excerpt(text: str, at: int, size: int) -> str:
    if len(text) <= size:
        return text
    start = max(0, min(at - size // 3, len(text) - size))
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + size < len(text) else ""
    return prefix + text[start : start + size] + suffix


@dataclass(frozen=True, slots=True)
class Fitted:
    """A request that fits, and what it took: a new fold to store, or a trimmed current exchange."""

    request: ModelRequest
    fold: Fold | None
    new_fold: bool = False
    trimmed: bool = False


class ContextWindow:
    """Measures each request against the model's window and folds or trims until it fits."""

    def __init__(
        self,
        policy: ContextPolicy,
        *,
        catalog: ModelCatalog | None = None,
        counter: TokenCounter | None = None,
        summary_model: str,
    ) -> None:
        self.policy = policy
        self._catalog = catalog
        self._counter = counter
        self.summary_model = summary_model

    async def limits(self, model: str) -> ModelLimits | None:
        return await self._catalog.limits(model) if self._catalog is not None else None

    async def input_budget(self, request: ModelRequest) -> int:
        """Input tokens the request may carry: the window less room for the answer (thinking included)."""
        limits = await self.limits(request.model)
        window = (limits.context_window if limits is not None else None) or self.policy.default_window
        window = min(window, self.policy.token_limit)
        return max(1_000, window - request.max_tokens - window // 50)

    async def measure(
        self, request: ModelRequest, turns: Sequence[Turn], measured: MeasuredSize | None, budget: int
    ) -> int:
        """The last call's real size plus an estimate of what was added; the provider's count near the limit."""
        upto = request.folded_upto
        if measured is not None and measured.folded_upto == upto and measured.turns <= len(turns):
            estimate = measured.tokens + estimate_turn_tokens(turns[measured.turns :], dict(request.attachments))
        else:
            estimate = estimate_request_tokens(request)
        if estimate < self.policy.count_above * budget or self._counter is None:
            return estimate
        try:
            return await self._counter.count_tokens(request)
        except ModelUnavailable as error:
            log.warning("token count unavailable (%s); using the estimate", error.user_message)
            return estimate

    async def fit(
        self,
        *,
        build: Callable[[Fold | None], ModelRequest],
        turns: Sequence[Turn],
        fold: Fold | None,
        measured: MeasuredSize | None,
        protected_from: int,
        summarise: Summarise,
        names: Callable[[str | None], str],
    ) -> Fitted:
        request = build(fold)
        budget = await self.input_budget(request)
        size = await self.measure(request, turns, measured, budget)
        if size <= self.policy.fold_at * budget:
            return Fitted(request, fold)
        start = fold.upto if fold is not None else 1
        end = choose_fold_end(
            turns,
            start=start,
            protected_from=protected_from,
            keep_recent=self.policy.keep_recent_turns,
            tokens_to_drop=size - int(self.policy.fold_to * budget),
            attachments=dict(request.attachments),
        )
        new_fold = False
        if end is not None:
            previous = fold.summary if fold is not None else ""
            try:
                summary = await fold_summary(
                    summarise,
                    model=self.summary_model,
                    previous=previous,
                    turns=turns[start:end],
                    names=names,
                    policy=self.policy,
                )
                new_fold = bool(summary)
            except ModelUnavailable as error:
                # Still fit this request; the fold is not stored, so the next answer tries the summary again.
                log.warning("could not summarise %d turns (%s); folding without a summary", end - start, error)
                summary = ""
            if not summary:
                summary = (previous + "\n\n" if previous else "") + UNSUMMARISED
            fold = Fold(summary=summary, upto=end)
            log.info("folded turns %d..%d of a thread into its summary (%d tokens before)", start, end - 1, size)
            request = build(fold)
            size = await self.measure(request, turns, None, budget)
        if size <= budget:
            return Fitted(request, fold, new_fold=new_fold)
        request = trim_to_fit(request, size - budget)
        return Fitted(request, fold, new_fold=new_fold, trimmed=True)


UNSUMMARISED = "(Some older messages could not be summarised just now; search_history finds their wording.)"
TRIMMED_NOTE = "\n\n[… trimmed: this part was too long to fit in the conversation …]"


def trim_to_fit(request: ModelRequest, excess_tokens: int) -> ModelRequest:
    """Last resort when even the newest exchange is too big: shorten its longest texts (tool results first)."""
    turns = list(request.turns)
    excess_chars = int((excess_tokens + 500) * CHARS_PER_TOKEN)
    candidates = sorted(
        (
            (len(block.text), isinstance(block, ToolResultBlock), t, b)
            for t, turn in enumerate(turns)
            for b, block in enumerate(turn.blocks)
            if isinstance(block, (TextBlock, ToolResultBlock)) and len(block.text) > 2_000
        ),
        key=lambda item: (not item[1], -item[0]),
    )
    for length, _, t, b in candidates:
        if excess_chars <= 0:
            break
        block = turns[t].blocks[b]
        assert isinstance(block, (TextBlock, ToolResultBlock))
        keep = max(1_000, length - excess_chars)
        excess_chars -= length - keep
        shortened = block.model_copy(update={"text": block.text[:keep] + TRIMMED_NOTE})
        blocks = list(turns[t].blocks)
        blocks[b] = shortened
        turns[t] = turns[t].model_copy(update={"blocks": tuple(blocks)})
    return dataclasses.replace(request, turns=tuple(turns))
