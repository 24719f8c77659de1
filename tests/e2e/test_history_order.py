"""History stays in conversation order whatever fails, and whichever process answers next (issue 16).

Two bots share one Redis; the first reaches it through a proxy the test cuts, as a network partition would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.core.conversation import ConversationKey
from bot.core.leases import INTERRUPTED_ANSWER
from tests.contract.test_redis_store import _proxy_for
from tests.e2e.conftest import BotFactory
from tests.e2e.helpers import bot_messages, eventually, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, message
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(90)
LEASE_S = 2.0


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    proxy = await _proxy_for(redis_url)
    yield proxy
    await proxy.stop()


async def answering_partly(slack: FakeSlack, root: str, text: str) -> None:
    await eventually(
        lambda: any(text in m.text for m in bot_messages(slack, "C0GENERAL", root)) or None,
        f"an answer showing {text!r}",
    )


async def test_an_answer_whose_save_fails_is_saved_before_the_next_question_even_on_another_process(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis_proxy: TcpProxy
) -> None:
    """Redis fails the answer's save (the rest still works); meanwhile the next question comes to another process.
    The first process keeps the thread and retries until the answer is saved; only then is the second question
    stored and answered: history in order, and Claude sees the first answer.

    (Before: the unsaved answer waited in the first process's memory while the thread was released; the other
    process stored its question first and asked Claude without the first answer.)"""
    cut_off = await start_bot(redis_url=redis_proxy.url, storage_wait_s=20.0)
    other = await start_bot()
    claude.script(TextReply("Answer one."), TextReply("Answer two."))
    root = "1700009001.000100"
    redis_proxy.refuse_containing = b"Answer one."
    await cut_off.sender.send_event(event_callback(app_mention("question one", ts=root)))
    await answering_partly(slack, root, "Answer one.")  # shown in full, still being saved
    await other.sender.send_event(event_callback(message("question two", thread_ts=root)))
    await asyncio.sleep(3.0)
    redis_proxy.refuse_containing = None
    await wait_for_reply(slack, "C0GENERAL", root, "Answer two.", timeout=20)

    assert "Answer one." in str(claude.requests[1].messages), "Claude answered question two without answer one"
    stored = await other.bot.store.load(ConversationKey("T0001", "C0GENERAL", root))
    assert [t.text for t in stored.turns] == ["question one", "Answer one.", "question two", "Answer two."]
    assert stored.open is None


async def test_a_process_that_lost_the_thread_during_an_outage_says_so_and_never_writes_to_it(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis_proxy: TcpProxy
) -> None:
    """The other process takes the thread while the first is cut off past its lease: it closes the first answer
    in history as interrupted before storing its own question; the first process, back, is refused and says so."""
    cut_off = await start_bot(redis_url=redis_proxy.url, thread_lease_s=LEASE_S, storage_wait_s=20.0)
    other = await start_bot(thread_lease_s=LEASE_S)
    gate = asyncio.Event()
    claude.script(TextReply("Answer one.", chunks=["Answer ", "one."], gate=gate), TextReply("Answer two."))
    root = "1700009002.000100"
    await cut_off.sender.send_event(event_callback(app_mention("question one", ts=root)))
    await answering_partly(slack, root, "Answer")
    await redis_proxy.cut()
    gate.set()
    await asyncio.sleep(LEASE_S + 0.5)  # the lease has run out in Redis
    await other.sender.send_event(event_callback(message("question two", thread_ts=root)))
    await answering_partly(slack, root, "Answer two.")  # the first answer's message is still waiting for Redis
    await redis_proxy.restore()
    await wait_for_reply(slack, "C0GENERAL", root, "another answer took over", timeout=20)

    assert INTERRUPTED_ANSWER in str(claude.requests[1].messages)
    stored = await other.bot.store.load(ConversationKey("T0001", "C0GENERAL", root))
    assert [t.text for t in stored.turns] == ["question one", INTERRUPTED_ANSWER, "question two", "Answer two."]
    assert stored.open is None
