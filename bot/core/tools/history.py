"""search_history: exact wording from the part of a long thread that was folded into its summary."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bot.core import texts
from bot.core.i18n import tr
from bot.core.tools.registry import Tool, ToolContext, ToolError

SEARCH_HISTORY_NAME = "search_history"


class SearchHistoryInput(BaseModel):
    query: str = Field(
        min_length=1,
        max_length=500,
        description='Words to look for; put an exact phrase in double quotes, e.g. "rollout date"',
    )
    limit: int = Field(5, ge=1, le=20, description="How many matching messages to return")


async def _search_history(args: SearchHistoryInput, context: ToolContext) -> str:
    if context.history is None:
        raise ToolError("nothing in this conversation has been folded into the summary; the whole thread is visible")
    hits = await context.history.search(args.query, limit=args.limit)
    if not hits:
        return f"No folded message matches {args.query!r}."
    return "\n\n".join(f"--- message {hit.turn_index} ({hit.speaker}) ---\n{hit.excerpt}" for hit in hits)


SEARCH_HISTORY = Tool(
    name=SEARCH_HISTORY_NAME,
    description=(
        "Search the earlier messages of this conversation that were folded into the summary, and return their exact "
        "wording. Use it when someone refers back to something the summary only mentions briefly (a number, a "
        "quote, a decision) before answering from memory."
    ),
    input_model=SearchHistoryInput,
    run=_search_history,
    for_people=False,
    describe=lambda args: tr(texts.TOOL_LOOKING_BACK),
)
