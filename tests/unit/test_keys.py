"""Where keys land on a Redis Cluster: whatever one operation touches shares a slot; conversations spread out."""

from __future__ import annotations

from datetime import date

from redis.crc import key_slot

from bot.core.conversation import ConversationKey
from bot.core.usage import Claim
from bot.storage.keys import Keys, UsageKeys

KEYS, USAGE = Keys("p:", hash_tags=True), UsageKeys("p:", hash_tags=True)
THREAD = ConversationKey("T1", "C1", "1700000000.000100")
DAY = date(2026, 11, 2)


def slots(*names: str) -> set[int]:
    return {key_slot(name.encode()) for name in names}


def test_a_conversations_turns_meta_and_lock_share_one_slot() -> None:
    assert len(slots(KEYS.conversation(THREAD), KEYS.conversation_meta(THREAD), KEYS.conversation_lock(THREAD))) == 1


def test_what_one_script_or_transaction_touches_shares_the_workspaces_slot() -> None:
    usage_record = [USAGE.day_totals("T1", DAY), USAGE.day_users("T1", DAY), USAGE.day_channels("T1", DAY)]
    usage_record += [USAGE.day_models("T1", DAY), USAGE.user_day("T1", "U1", DAY), USAGE.month_cost("T1", "2026-11")]
    usage_record += [USAGE.raw("T1", DAY), USAGE.reserved("T1"), USAGE.user_reserved("T1", "U1")]
    workspace = [KEYS.budgets("T1"), KEYS.call_window("chat.update", "T1"), KEYS.call_promises("chat.update", "T1")]
    workspace += [KEYS.call_hold("chat.update", "T1"), KEYS.call_window("chat.postMessage", "T1", "C1")]
    workspace += [KEYS.answer_votes("T1", "a1"), KEYS.feedback_day("T1", "2026-11-02"), KEYS.answer("T1", "a1")]
    workspace += [KEYS.delivery("T1", "event:Ev1"), KEYS.delivery("T1", "msg:T1:C1:1.2"), KEYS.media("T1", "F1")]
    workspace += [USAGE.once(Claim("budget_warning", "T1", "2026-11"))]
    assert len(slots(*usage_record, *workspace)) == 1
    assert slots(KEYS.budgets("T2")) != slots(KEYS.budgets("T1"))


def test_conversations_of_one_workspace_spread_over_the_cluster() -> None:
    threads = [ConversationKey("T1", "C1", f"1700000000.{n:06d}") for n in range(100)]
    spread = slots(*(KEYS.conversation(thread) for thread in threads))
    assert len(spread) > 90
    assert any(slot < 5461 for slot in spread) and any(slot > 10922 for slot in spread)  # on every node of three


def test_a_single_server_keeps_the_keys_earlier_versions_wrote() -> None:
    single, usage = Keys("claude-bot:"), UsageKeys("claude-bot:")
    assert single.conversation(THREAD) == "claude-bot:conv:T1:C1:1700000000.000100"
    assert single.call_hold("chat.update", "T1") == "claude-bot:calls:T1:chat.update:hold"
    assert single.profile("user", "T1", "U1") == "claude-bot:profile:user:T1:U1"
    assert usage.user_day("T1", "U1", DAY) == "claude-bot:usage:T1:day:2026-11-02:user:U1"
    assert usage.once(Claim("turned_away", "T1", "U1")) == "claude-bot:once:turned-away:T1:U1"
    assert usage.once(Claim("weekly_summary", "T1", "2026-W45")) == "claude-bot:once:weekly:T1:2026-W45"
