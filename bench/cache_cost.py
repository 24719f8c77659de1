"""What prompt caching and folding save: a 40-turn thread, the bot as built vs a naive client, tokens and dollars.

Run from the project root:  python -m bench.cache_cost   (add --turns N / --limit TOKENS to vary it)

Both clients talk to the project's fake Claude with token accounting on: it counts tokens from what is sent
(characters / 4) and serves prompt-cache hits by prefix as the API documents (breakpoints, 20-block lookback,
1,024-token minimum, 5-minute TTL). The bot runs its real core (persona, Redis history, context window,
summaries by the fast model, usage ledger); the naive client resends the whole history every turn, uncached.
Costs use the bot's own price table, so both sides are priced the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic

from bot.core.conversation import Asker, ChannelContext, ConversationKey, IncomingMessage
from bot.core.events import ReplyDone, Usage
from bot.core.usage import DEFAULT_PRICES, PriceTable
from bot.settings import Settings
from bot.wiring import build_core
from tests.fakes.anthropic_api import FakeAnthropic, RecordedRequest, TextReply

MODEL = "claude-sonnet-4-6"  # $3 / $15 per MTok; cache writes 1.25x, reads 0.1x
WORKSPACE, CHANNEL, THREAD = "TBENCH", "CBENCH", "1700000000.000100"
PERSONA_TOKENS = 2_000
ANSWER_WORDS = 220  # ~300 tokens: a typical chat answer
QUESTION_WORDS = 60  # ~80 tokens


def persona_text() -> str:
    """A 2,000-token persona (8,000 characters at the fake's 4 characters per token)."""
    rule = "Answer precisely, cite the relevant policy section, and keep a friendly, professional tone. "
    body = (rule * (PERSONA_TOKENS * 4 // len(rule) + 1))[: PERSONA_TOKENS * 4]
    return f"---\nname: bench\ndescription: A long house-style persona for the benchmark.\n---\n{body}\n"


def words(prefix: str, count: int, turn: int) -> str:
    return prefix + " " + " ".join(f"w{turn}_{i}" for i in range(count))


def reply_for(request: RecordedRequest) -> TextReply:
    if "running summary" in request.system_text:
        return TextReply(words("Summary:", 250, 0))
    turn = len(request.messages)
    return TextReply(words("Answer:", ANSWER_WORDS, turn))


@dataclass
class TurnCost:
    input_tokens: int  # billed at the full input price
    cache_write: int
    cache_read: int
    output_tokens: int
    usd: float

    @property
    def sent(self) -> int:
        return self.input_tokens + self.cache_write + self.cache_read


def cost_of(prices: PriceTable, model: str, usage: Usage) -> float:
    usd, _ = prices.cost(model, usage)
    return usd


async def run_bot(fake: FakeAnthropic, turns: int, limit: int, redis_url: str | None, data_dir: Path) -> list[TurnCost]:
    personas = data_dir / "personas"
    personas.mkdir()
    (personas / "bench.md").write_text(persona_text())
    settings = Settings(
        anthropic_api_key="test-key",
        anthropic_base_url=fake.base_url,
        claude_model=MODEL,
        claude_max_tokens=2_048,
        context_token_limit=limit,
        personas_dir=personas,
        default_persona="bench",
        redis_url=redis_url,
        redis_key_prefix=f"bench-{os.getpid()}:",
        data_dir=data_dir,
        fetch_url_enabled=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    core = build_core(settings)
    await core.start()
    replies = core.replies("Plain Markdown.")
    today = datetime.now(UTC).date()
    costs: list[TurnCost] = []
    try:
        previous = await core.usage.report(WORKSPACE, today, today)
        for turn in range(turns):
            message = IncomingMessage(
                key=ConversationKey(WORKSPACE, CHANNEL, THREAD),
                message_id=f"{turn}",
                user_id="UBENCH",
                text=words("Question:", QUESTION_WORDS, turn),
                asker=Asker("UBENCH", display_name="Ada", timezone="Europe/Paris"),
                channel=ChannelContext(name="support", topic="Customer questions"),
            )
            async for event in replies.answer(message):
                if isinstance(event, ReplyDone) and not event.text:
                    raise RuntimeError("the bot gave no answer")
            # The ledger holds every billed call of the turn, summaries included.
            now = await core.usage.report(WORKSPACE, today, today)
            costs.append(
                TurnCost(
                    input_tokens=now.input_tokens - previous.input_tokens,
                    cache_write=now.cache_write_tokens - previous.cache_write_tokens,
                    cache_read=now.cache_read_tokens - previous.cache_read_tokens,
                    output_tokens=now.output_tokens - previous.output_tokens,
                    usd=now.cost_usd - previous.cost_usd,
                )
            )
            previous = now
    finally:
        await replies.drain()
        await core.close()
    return costs


async def run_naive(fake: FakeAnthropic, turns: int, prices: PriceTable) -> list[TurnCost]:
    """Resend everything, every turn, with no cache_control anywhere: what a simple wrapper does."""
    client = anthropic.AsyncAnthropic(api_key="test-key", base_url=fake.base_url, max_retries=0)
    system = persona_text().split("---\n", 2)[2]
    history: list[dict[str, Any]] = []
    costs: list[TurnCost] = []
    try:
        for turn in range(turns):
            history.append({"role": "user", "content": words("Question:", QUESTION_WORDS, turn)})
            reply = await client.messages.create(model=MODEL, max_tokens=2_048, system=system, messages=history)
            history.append({"role": "assistant", "content": reply.content[0].text})  # type: ignore[union-attr]
            usage = Usage(reply.usage.input_tokens, reply.usage.output_tokens)
            costs.append(TurnCost(usage.input_tokens, 0, 0, usage.output_tokens, cost_of(prices, MODEL, usage)))
    finally:
        await client.close()
    return costs


def table(bot: list[TurnCost], naive: list[TurnCost]) -> str:
    lines = [
        "turn | bot: input  cache_w  cache_r  output  sent     $      | naive: input  output     $",
        "-----+------------------------------------------------------+---------------------------------",
    ]
    for n, (b, v) in enumerate(zip(bot, naive, strict=True), start=1):
        lines.append(
            f"{n:4} | {b.input_tokens:10,} {b.cache_write:8,} {b.cache_read:8,} {b.output_tokens:7,} {b.sent:7,}"
            f"  {b.usd:7.4f} | {v.input_tokens:12,} {v.output_tokens:7,}  {v.usd:7.4f}"
        )
    return "\n".join(lines)


async def main(turns: int, limit: int) -> None:
    redis_url = os.environ.get("REDIS_URL")
    prices = PriceTable(DEFAULT_PRICES)
    with tempfile.TemporaryDirectory() as scratch:
        async with FakeAnthropic(token_accounting=True, min_cacheable_tokens=1_024) as fake:
            fake.default_reply = reply_for  # type: ignore[assignment]
            bot = await run_bot(fake, turns, limit, redis_url, Path(scratch))
        async with FakeAnthropic(token_accounting=True, min_cacheable_tokens=1_024) as fake:
            fake.default_reply = reply_for  # type: ignore[assignment]
            naive = await run_naive(fake, turns, prices)
    print(table(bot, naive))
    bot_usd, naive_usd = sum(c.usd for c in bot), sum(c.usd for c in naive)
    half = turns // 2
    print()
    print(f"{turns} turns, {PERSONA_TOKENS:,}-token persona, {MODEL}, context limit {limit:,} tokens")
    print(f"total cost: bot ${bot_usd:.4f}  naive ${naive_usd:.4f}  ratio {bot_usd / naive_usd:.1%} (target <= 30%)")
    print(
        f"tokens sent per turn, second half: bot max {max(c.sent for c in bot[half:]):,} "
        f"(median {statistics.median(c.sent for c in bot[half:]):,.0f}); "
        f"naive max {max(c.sent for c in naive[half:]):,} - the bot's stays bounded by the context budget"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--limit", type=int, default=16_000, help="CONTEXT_TOKEN_LIMIT for the bot (default 16000)")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.limit))


if __name__ == "__main__":
    cli()
