"""The core's use cases (Replies, Metering, ToolRunner) on the in-memory storage twins: no Redis, no servers.

The end-to-end tests prove the same behaviours through Slack and Claude fakes; these pin down the core's own rules
in milliseconds, so a change to them fails here first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from bot.core.conversation import (
    ConversationKey,
    Fold,
    IncomingMessage,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
    Turn,
)
from bot.core.events import (
    ApprovalRequested,
    ApprovalSettled,
    ModelEvent,
    ModelTurnComplete,
    ReplyDone,
    ReplyEvent,
    TextDelta,
    ToolRunning,
    Usage,
)
from bot.core.leases import INTERRUPTED_ANSWER, INTERRUPTED_TOOL_RESULT, LeaseLost
from bot.core.metering import BudgetPolicy, BudgetSpent, CallContext, Metering
from bot.core.personas import Persona, PersonaCatalog
from bot.core.ports import ModelRequest
from bot.core.prompts import ReplyConfig
from bot.core.replies import Replies
from bot.core.tools.registry import Tool, ToolContext, ToolRegistry
from bot.core.tools.runner import ToolRound, ToolRunner
from bot.core.usage import PriceTable
from bot.storage.memory import MemoryStore, MemoryUsageLedger

MODEL = "claude-fable-5"  # priced in the default table
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def memory_store() -> MemoryStore:
    return MemoryStore(conversation_ttl_s=3600, dm_idle_reset_s=60, dedup_ttl_s=600, lock_wait_s=1.0)


class ScriptedModel:
    """A LanguageModel port that answers each call with the next scripted text and records what it was sent."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.requests: list[ModelRequest] = []

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        text = self.answers.pop(0)
        for word in text.split(" "):
            yield TextDelta(text=word + " ")
        usage = Usage(input_tokens=100, output_tokens=len(text) // 4)
        yield ModelTurnComplete(
            blocks=(TextBlock(text=text),), usage=usage, stop_reason="end_turn", model=request.model
        )


def personas() -> PersonaCatalog:
    return PersonaCatalog(
        [
            Persona(name="default", description="Helpful", prompt="You are helpful."),
            Persona(name="sql_expert", description="SQL", prompt="You know SQL."),
        ]
    )


def replies(model: ScriptedModel, store: MemoryStore) -> Replies:
    config = ReplyConfig(model=MODEL, max_tokens=1024)
    return Replies(model, store, config, personas(), store, clock=lambda: NOW)


async def collect(events: AsyncIterator[ReplyEvent]) -> list[ReplyEvent]:
    return [event async for event in events]


def message(text: str, thread: str = "1700000000.000100", message_id: str = "1700000000.000200") -> IncomingMessage:
    return IncomingMessage(key=ConversationKey("T1", "C1", thread), message_id=message_id, user_id="U1", text=text)


# --- Replies -------------------------------------------------------------------------------------------------
async def test_an_answer_streams_and_both_turns_are_remembered_for_the_follow_up() -> None:
    store, model = memory_store(), ScriptedModel("Four.", "Five.")
    use_case = replies(model, store)
    events = await collect(use_case.answer(message("What is 2+2?")))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip() == "Four."
    assert isinstance(events[-1], ReplyDone)
    assert await use_case.is_following(message("x").key)

    await collect(use_case.answer(message("And 2+3?", message_id="1700000000.000300")))
    texts = [turn.text for turn in model.requests[1].turns]
    assert texts[1] == "Four." and "And 2+3?" in texts[2]
    assert len((await store.load(message("x").key)).turns) == 4


async def test_a_new_thread_speaks_as_the_channels_persona_and_keeps_it() -> None:
    store, model = memory_store(), ScriptedModel("SELECT 1;", "Still SQL.")
    await store.set_channel_persona("T1", "C1", "sql_expert")
    use_case = replies(model, store)
    await collect(use_case.answer(message("A query?")))
    await store.set_channel_persona("T1", "C1", "default")
    await collect(use_case.answer(message("Another?", message_id="1700000000.000300")))
    assert all("You know SQL." in "".join(request.system) for request in model.requests)


async def test_forgetting_a_thread_starts_it_over() -> None:
    store, model = memory_store(), ScriptedModel("One.", "Fresh.")
    use_case = replies(model, store)
    await collect(use_case.answer(message("First?")))
    assert await use_case.forget(message("x").key)
    await collect(use_case.answer(message("Again?", message_id="1700000000.000300")))
    assert len(model.requests[1].turns) == 1


class FailingSaveModel(ScriptedModel):
    """Storage goes away just as the first answer completes, so its save fails; it comes back `down_s` later."""

    def __init__(self, store: MemoryStore, *answers: str, down_s: float = 0.3) -> None:
        super().__init__(*answers)
        self.store, self.down_s = store, down_s
        self.called = asyncio.Event()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        first = not self.requests
        self.called.set()
        async for event in super().stream(request):
            if first and isinstance(event, ModelTurnComplete):
                self.store.up = False
                asyncio.get_running_loop().call_later(self.down_s, setattr, self.store, "up", True)
            yield event


async def test_a_failed_save_is_retried_under_the_lock_so_the_next_question_comes_after_the_answer() -> None:
    store = memory_store()
    model = FailingSaveModel(store, "Four.", "Five.")
    use_case = replies(model, store)
    first = asyncio.create_task(collect(use_case.answer(message("What is 2+2?"))))
    await model.called.wait()
    second = await collect(use_case.answer(message("And 2+3?", message_id="1700000000.000300")))
    await first
    assert isinstance(second[-1], ReplyDone)
    assert [turn.text for turn in model.requests[1].turns][1] == "Four.", "the second question saw the first answer"
    stored = await store.load(message("x").key)
    assert [turn.text.strip() for turn in stored.turns][1:] == ["Four.", "And 2+3?", "Five."]
    assert stored.open is None


async def test_an_answer_cut_short_by_a_lost_lease_is_closed_by_the_next_holder_before_its_question() -> None:
    store, model = memory_store(), ScriptedModel("Fresh answer.")
    key = message("x").key
    call = ToolCallBlock(id="toolu_1", name="lookup", input={})
    async with store.lock(key) as gone:  # a process that asked for a tool, then was cut off past its lease
        await store.append(key, Turn.user("Old question?"), lease=gone, exchange="open")
        await store.append(key, Turn(role="assistant", blocks=(call,)), lease=gone)
        store.expire_lease(key)
        await collect(replies(model, store).answer(message("New question?")))
        with pytest.raises(LeaseLost):
            await store.append(key, Turn(role="user", blocks=()), lease=gone)
    sent = model.requests[0].turns
    assert [turn.role for turn in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[2].blocks == (ToolResultBlock(tool_call_id="toolu_1", text=INTERRUPTED_TOOL_RESULT, is_error=True),)
    assert sent[3].text == INTERRUPTED_ANSWER
    stored = await store.load(key)
    assert stored.turns[-1].text == "Fresh answer." and stored.open is None


async def test_a_failed_answer_leaves_its_question_and_a_closed_exchange() -> None:
    store, model = memory_store(), ScriptedModel()  # no answers: the model call fails
    use_case = replies(model, store)
    with pytest.raises(IndexError):
        await collect(use_case.answer(message("Anyone?")))
    stored = await store.load(message("x").key)
    assert [turn.text for turn in stored.turns] == ["Anyone?"] and stored.open is None


# --- Metering -------------------------------------------------------------------------------------------------
class Admins:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def notify_admins(self, workspace_id: str, text: str) -> None:
        self.sent.append(text)


CALL = CallContext(workspace_id="T1", user_id="U1", channel_id="C1", persona="default")


def request(max_tokens: int = 1000) -> ModelRequest:
    return ModelRequest(model=MODEL, max_tokens=max_tokens, system=("You are helpful.",), turns=())


async def test_concurrent_calls_cannot_overshoot_the_monthly_budget_by_more_than_one_request() -> None:
    metering = Metering(MemoryUsageLedger(), PriceTable(), BudgetPolicy(month_usd=0.10), clock=lambda: NOW)
    outcomes = await asyncio.gather(*(metering.admit(CALL, request()) for _ in range(200)), return_exceptions=True)
    admitted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetSpent)]
    assert admitted and refused and len(admitted) + len(refused) == 200
    estimate = PriceTable().estimate(MODEL, 10, 1000)
    assert len(admitted) * estimate <= 0.10 + estimate


async def test_a_spent_budget_says_when_it_resets_and_an_admin_override_lifts_it() -> None:
    store, ledger = memory_store(), MemoryUsageLedger()
    metering = Metering(ledger, PriceTable(), BudgetPolicy(month_usd=0.0), budget_store=store, clock=lambda: NOW)
    with pytest.raises(BudgetSpent, match="resets on December 1"):
        await metering.admit(CALL, request())
    await store.set_budget("T1", "month", None)  # /claude-budget month off
    admission = await metering.admit(CALL, request())
    assert admission.model == MODEL


async def test_admins_are_warned_once_when_spending_passes_the_warning_level() -> None:
    admins, ledger = Admins(), MemoryUsageLedger()
    metering = Metering(ledger, PriceTable(), BudgetPolicy(month_usd=1.0), notifier=admins, clock=lambda: NOW)
    for _ in range(5):  # $0.20 each: 80 % is passed by the fourth, and the fifth must not warn again
        admission = await metering.admit(CALL, request(max_tokens=10))
        await metering.settle(CALL, admission, MODEL, Usage(input_tokens=10_000, output_tokens=2_000))
    assert len(admins.sent) == 1 and "budget" in admins.sent[0]
    assert len(ledger.records) == 5


async def test_near_the_limit_the_cheaper_fallback_model_answers() -> None:
    ledger = MemoryUsageLedger()
    policy = BudgetPolicy(month_usd=1.0, fallback_model="claude-fable-5-2", fallback_at=0.5)
    metering = Metering(ledger, PriceTable(), policy, clock=lambda: NOW)
    assert (await metering.admit(CALL, request(max_tokens=10))).model == MODEL
    admission = await metering.admit(CALL, request(max_tokens=10))
    await metering.settle(CALL, admission, MODEL, Usage(input_tokens=60_000, output_tokens=2_000))
    assert (await metering.admit(CALL, request(max_tokens=10))).model == "claude-fable-5-2"


# --- ToolRunner -------------------------------------------------------------------------------------------------
class PostInput(BaseModel):
    text: str


def post_tool(posted: list[str]) -> Tool:
    async def run(parsed: PostInput, context: ToolContext) -> str:
        posted.append(parsed.text)
        return "posted"

    return Tool(name="post_message", description="Post", input_model=PostInput, run=run, acts=True)


CONTEXT = ToolContext(workspace_id="T1", channel_id="C1", thread_id="1.1", user_id="U1")
CALLS = [ToolCallBlock(id="call1", name="post_message", input={"text": "hello"})]


async def decide_when_asked(
    runner: ToolRunner, store: MemoryStore, outcome: ToolRound, approve: bool
) -> list[ReplyEvent]:
    events: list[ReplyEvent] = []
    async for event in runner.run(list(CALLS), CONTEXT, lambda tool: True, outcome):
        events.append(event)
        if isinstance(event, ApprovalRequested):
            assert await store.decide("T1", event.approval_id, "U2", approved=True) == "not_yours"
            assert await store.decide("T1", event.approval_id, "U1", approved=approve) == "ok"
    return events


async def test_a_tool_that_acts_runs_only_after_the_asker_approves() -> None:
    store, posted = memory_store(), list[str]()
    runner = ToolRunner(ToolRegistry([post_tool(posted)]), store, approval_timeout_s=5)
    outcome = ToolRound(results=[])
    events = await decide_when_asked(runner, store, outcome, approve=True)
    assert any(isinstance(e, ApprovalSettled) and e.approved for e in events)
    assert any(isinstance(e, ToolRunning) for e in events)
    assert posted == ["hello"] and outcome.results[0].text == "posted"


async def test_a_denied_tool_never_runs_and_claude_hears_why() -> None:
    store, posted = memory_store(), list[str]()
    runner = ToolRunner(ToolRegistry([post_tool(posted)]), store, approval_timeout_s=5)
    outcome = ToolRound(results=[])
    await decide_when_asked(runner, store, outcome, approve=False)
    assert posted == [] and outcome.results[0].is_error


async def test_an_unknown_tool_or_bad_input_is_an_error_result_not_a_crash() -> None:
    runner = ToolRunner(ToolRegistry([post_tool([])]), memory_store())
    outcome = ToolRound(results=[])
    calls = [
        ToolCallBlock(id="a", name="launch_rockets", input={}),
        ToolCallBlock(id="b", name="post_message", input={"txt": "typo"}),
    ]
    async for _ in runner.run(calls, CONTEXT, lambda tool: True, outcome):
        pass
    assert [r.is_error for r in outcome.results] == [True, True]
    assert "launch_rockets" in outcome.results[0].text and "invalid input" in outcome.results[1].text


# --- Long threads: the folded turns are read only when needed ---------------------------------------------------
class Members:
    """A ConversationReader that only answers `can_read`: the asker may see every channel but `hidden`."""

    def __init__(self, hidden: str) -> None:
        self.hidden = hidden

    async def can_read(self, workspace_id: str, channel_id: str, *, as_user: str, shown_in: str) -> bool:
        return channel_id != self.hidden


class CountingStore(MemoryStore):
    """Counts reads of folded turns: an answer should not make any unless it must."""

    folded_reads = 0

    async def folded(self, key: ConversationKey, upto: int) -> list[tuple[int, Turn]]:
        self.folded_reads += 1
        return await super().folded(key, upto)


async def thread_that_read_a_secret_channel(store: MemoryStore, fold: Fold) -> None:
    """q0 read #secret (a tool call and its result), then several exchanges; turns 1..fold.upto-1 are folded."""
    call = ToolCallBlock(id="toolu_s", name="read_channel", input={"channel": "<#CSECRET|secret>"})
    turns = [
        Turn.user("what's in #secret?", author_id="U1"),
        Turn(role="assistant", blocks=(call,)),
        Turn(role="user", blocks=(ToolResultBlock(tool_call_id="toolu_s", text="launch codes are 0451"),)),
        Turn(role="assistant", blocks=(TextBlock(text="Read it."),)),
    ]
    for n in range(1, 5):
        turns += [Turn.user(f"q{n}", author_id="U1"), Turn(role="assistant", blocks=(TextBlock(text=f"a{n}"),))]
    await store.append(message("x").key, *turns)
    await store.save_fold(message("x").key, fold)


def guest_or_member(model: ScriptedModel, store: MemoryStore, hidden: str) -> Replies:
    config = ReplyConfig(model=MODEL, max_tokens=1024)
    return Replies(model, store, config, personas(), store, reader=Members(hidden), clock=lambda: NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("kept", [400, 2])  # every folded turn kept / most trimmed away
async def test_a_fold_whose_turns_read_a_channel_the_asker_cannot_see_is_not_shown_to_them(kept: int) -> None:
    store = CountingStore(conversation_ttl_s=3600, dm_idle_reset_s=60, dedup_ttl_s=600, folded_turns_kept=kept)
    await thread_that_read_a_secret_channel(store, Fold("The secret channel says 0451.", 8, ("CSECRET",), ()))
    member = ScriptedModel("Fine.")
    await collect(guest_or_member(member, store, hidden="").answer(message("and now?", message_id="1.1")))
    assert "0451" in str(member.requests[0]) and store.folded_reads == 0  # the summary, shown; nothing else read

    guest = ScriptedModel("Nothing to share.")
    await collect(guest_or_member(guest, store, hidden="CSECRET").answer(message("what did it say?", message_id="1.2")))
    [sent] = guest.requests
    assert "0451" not in str(sent) and store.folded_reads == 1
    assert all(turn.blocks for turn in sent.turns)  # no stand-in for an unread turn ever reaches the model
    assert "q4" in str(sent) and "what did it say?" in str(sent)


async def test_a_fold_stored_before_it_kept_its_reads_has_its_turns_read_and_screened() -> None:
    store = CountingStore(conversation_ttl_s=3600, dm_idle_reset_s=60, dedup_ttl_s=600)
    await thread_that_read_a_secret_channel(store, Fold("Summary.", 8))  # no reads, no urls: an older version's
    model = ScriptedModel("Fine.", "Fine again.")
    await collect(guest_or_member(model, store, hidden="").answer(message("and now?", message_id="1.1")))
    assert store.folded_reads == 1 and "Summary." in str(model.requests[0])  # read, found readable: the fold stays
    await collect(guest_or_member(model, store, hidden="CSECRET").answer(message("and?", message_id="1.2")))
    assert "0451" not in str(model.requests[1]) and "Summary." not in str(model.requests[1])


async def test_usage_refused_by_a_ledger_outage_is_recorded_once_the_ledger_is_back() -> None:
    store, model, ledger = memory_store(), ScriptedModel("Four."), MemoryUsageLedger()
    metering = Metering(ledger, PriceTable(), BudgetPolicy(), clock=lambda: NOW)
    config = ReplyConfig(model=MODEL, max_tokens=1024)
    use_case = Replies(model, store, config, personas(), store, metering=metering, clock=lambda: NOW)
    ledger.up = False
    events = await collect(use_case.answer(message("What is 2+2?")))
    assert isinstance(events[-1], ReplyDone), "the answer is not held up by the ledger"
    assert ledger.records == []
    ledger.up = True
    await use_case.drain(timeout_s=5)
    assert [(r.model, r.usage.input_tokens) for r in ledger.records] == [(MODEL, 100)]


async def test_a_message_id_that_is_not_a_finite_time_still_gets_its_turn_on_the_thread() -> None:
    store, model = memory_store(), ScriptedModel("Fine.", "Also fine.")
    use_case = replies(model, store)
    for message_id in ("nan", "inf"):
        events = await collect(use_case.answer(message("Hello?", message_id=message_id)))
        assert isinstance(events[-1], ReplyDone)
    assert len((await store.load(message("x").key)).turns) == 4
