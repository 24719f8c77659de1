"""Token estimates before a call: the one home for what a request will cost to read, used to fit the context
window and to reserve a budget. The provider's own count replaces them near a limit; the bill is what it reports.

Media are counted by their real size, as the Messages API reads them:
- an image: width x height / 750 tokens, after the API's downscaling of anything with a long edge over 1568 px or
  above ~1,600 tokens (https://platform.claude.com/docs/en/build-with-claude/vision);
- a PDF: every page is read twice, as extracted text and as an image of the page
  (https://docs.claude.com/en/docs/build-with-claude/pdf-support). That page puts the text at 1,500-3,000 tokens
  for a typical page (a figure our checked reference does not hold: unverified); the upper end is used here (a
  denser page may hold more), plus a page image at the image cap, since the page's rendering size is not published.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

from bot.core.conversation import (
    MediaBlock,
    RedactedThinkingBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    ToolResultBlock,
    Turn,
)
from bot.core.ports import Attachment, ModelRequest

CHARS_PER_TOKEN = 3.5  # English prose is ~4; code and other languages run denser, so err on the large side
TOOL_OVERHEAD_TOKENS = 350  # the API's own tool-use system text, added when tools are offered [U]

IMAGE_PIXELS_PER_TOKEN = 750
IMAGE_MAX_LONG_EDGE_PX = 1568
IMAGE_MAX_TOKENS = 1_600  # "~1,600 tokens": larger images are scaled down to about this
PDF_PAGE_TEXT_TOKENS = 3_000
PDF_PAGE_TOKENS = PDF_PAGE_TEXT_TOKENS + IMAGE_MAX_TOKENS
PDF_MAX_PAGES = 100  # the API's limit per request
PDF_TOKENS_PER_B64_CHAR = 1 / 16  # page count unknown: a guess from the size (unverified), capped by the limit

# Web search: each search's results become input tokens of the same call (the docs say so; their size is not
# published: ~10,000 tokens for a page of results is an unverified allowance) and each search has a fee (usage.py).
WEB_SEARCH_MAX_USES = 5  # the bot's cap on searches in one call (the tool's `max_uses`)
WEB_SEARCH_RESULT_TOKENS = 10_000


def image_tokens(width: int | None, height: int | None) -> int:
    """What an image costs to read, after the API's own downscaling; unknown dimensions cost the cap."""
    if not width or not height or width <= 0 or height <= 0:
        return IMAGE_MAX_TOKENS
    scale = min(1.0, IMAGE_MAX_LONG_EDGE_PX / max(width, height))
    pixels = width * height * scale * scale
    return min(math.ceil(pixels / IMAGE_PIXELS_PER_TOKEN), IMAGE_MAX_TOKENS)


def attachment_tokens(attachment: Attachment) -> int:
    """An image by its pixels, a PDF by its pages (text and page image each): enough to reserve for it."""
    if attachment.kind != "pdf":
        return image_tokens(attachment.width, attachment.height)
    if attachment.pages is not None and attachment.pages > 0:
        return min(attachment.pages, PDF_MAX_PAGES) * PDF_PAGE_TOKENS
    guess = max(float(PDF_PAGE_TOKENS), len(attachment.data_b64) * PDF_TOKENS_PER_B64_CHAR)
    return int(min(guess, PDF_MAX_PAGES * PDF_PAGE_TOKENS))


def estimate_turn_tokens(turns: Sequence[Turn], attachments: Mapping[str, Attachment] | None = None) -> int:
    total = 0.0
    for turn in turns:
        total += 4  # role and framing
        for block in turn.blocks:
            total += _block_tokens(block, attachments or {})
    return int(total) + 1


def _block_tokens(block: object, attachments: Mapping[str, Attachment]) -> float:
    if isinstance(block, TextBlock):
        return len(block.text) / CHARS_PER_TOKEN
    if isinstance(block, ThinkingBlock):
        return len(block.thinking) / CHARS_PER_TOKEN
    if isinstance(block, RedactedThinkingBlock):
        return len(block.data) / CHARS_PER_TOKEN
    if isinstance(block, ToolCallBlock):
        return (len(block.name) + len(json.dumps(block.input))) / CHARS_PER_TOKEN + 10
    if isinstance(block, ToolResultBlock):
        return len(block.text) / CHARS_PER_TOKEN + 10
    if isinstance(block, ServerToolBlock):
        return len(json.dumps(block.data)) / CHARS_PER_TOKEN
    if isinstance(block, MediaBlock):
        attachment = attachments.get(block.ref)
        return attachment_tokens(attachment) if attachment is not None else 20
    return 0.0


def estimate_request_tokens(request: ModelRequest) -> int:
    """The whole request from scratch: system, tools and turns."""
    system = sum(len(part) for part in request.system) / CHARS_PER_TOKEN
    tools = sum(len(t.description) + len(json.dumps(t.input_schema)) for t in request.tools) / CHARS_PER_TOKEN
    overhead = TOOL_OVERHEAD_TOKENS if request.tools or request.web_search else 0
    return int(system + tools + overhead) + estimate_turn_tokens(request.turns, request.attachments)


def web_searches_at_most(request: ModelRequest) -> int:
    """The searches one call may make (each billed a fee, each adding its results to the input)."""
    return WEB_SEARCH_MAX_USES if request.web_search else 0


def worst_case_input_tokens(request: ModelRequest) -> int:
    """All the input one call may be billed for: the request, plus the results of every search it may make."""
    return estimate_request_tokens(request) + web_searches_at_most(request) * WEB_SEARCH_RESULT_TOKENS
