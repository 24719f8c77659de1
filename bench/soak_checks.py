"""The soak's judge: what people saw in Slack, what the bot stored, and what it billed, checked against invariants.

Pure functions over plain data (the fake Slack's messages, the stored turns as Redis returned them, the fake
Claude's bill and the bot's ledger), so the rules can be read, and tested, apart from the processes.

The rules (each counted, each must be 0):

* duplicate answers: a question answered completely more than once, in Slack or in the stored history, or its
  question stored more than once;
* user turns lost: a question asked (and delivered to the bot, with Slack's retries) that is not in the thread's
  stored history;
* answers left live: a bot message still showing its Stop button, or still ending with the streaming cursor, or
  a native stream never stopped, once the system was given time to recover;
* invalid histories: a thread whose stored turns the model could not be sent, or that are out of order: a turn
  that does not parse, an assistant turn first or two in a row, a tool call without its result right after it (or
  a result without its call), questions out of order, or an answer stored before its question (the answer names a
  question other than the last one stored before it). Two user turns in a row are allowed: a failed answer leaves
  its question unanswered, and the bot joins such turns when it calls Claude (bot/core/prompts.py);
* ledger mismatch: the bot's usage ledger differs from what the fake Claude billed, token kind by token kind.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

QUESTION = "soak question {number}:"
ANSWER = "this answers soak question {number}."
END_MARK = "That is the whole answer."
STREAMING_CURSOR = "▍"
STOP_ACTION = "answer_stop"
_QUESTION_RE = re.compile(r"soak question (\d+):")
_ANSWER_RE = re.compile(r"answers soak question (\d+)\.")
TOKEN_FIELDS = ("input", "output", "cache_write", "cache_read")


@dataclass(frozen=True, slots=True)
class Question:
    """One question as the asker sent it, and whether Slack ever got a 2xx for it (with its retries)."""

    channel: str
    root_ts: str
    number: int
    ts: str
    acked: bool
    attempts: int


@dataclass(frozen=True, slots=True)
class ShownMessage:
    """A bot message as the fake Slack holds it at the end."""

    channel: str
    thread_ts: str
    ts: str
    text: str
    blocks: tuple[Any, ...] = ()
    stream_state: str | None = None


@dataclass
class Verdict:
    """The counts the invariants are about, with a few examples of each failure for the report."""

    questions: int = 0
    not_acked: int = 0
    answered: int = 0  # questions with one complete answer in Slack
    duplicate_answers: int = 0
    user_turns_lost: int = 0
    answers_left_live: int = 0
    invalid_histories: int = 0
    ledger: dict[str, int] = field(default_factory=dict)
    billed: dict[str, int] = field(default_factory=dict)
    # Calls that completed within KILL_SHADOW_S before their process was SIGKILLed and never reached the ledger.
    unrecorded_at_kills: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ledger_mismatch(self) -> dict[str, int]:
        """Ledger minus bill, for each token kind that differs."""
        return {
            k: self.ledger.get(k, 0) - self.billed.get(k, 0)
            for k in TOKEN_FIELDS
            if self.ledger.get(k, 0) != self.billed.get(k, 0)
        }

    def failures(self) -> dict[str, int]:
        """Every invariant that does not hold, with its count."""
        found = {
            "duplicate answers": self.duplicate_answers,
            "user turns lost": self.user_turns_lost,
            "answers left live": self.answers_left_live,
            "invalid histories": self.invalid_histories,
            "ledger tokens off": sum(abs(v) for v in self.ledger_mismatch.values()),
        }
        return {name: count for name, count in found.items() if count}

    def note(self, kind: str, example: str) -> None:
        kept = self.examples.setdefault(kind, [])
        if len(kept) < 5:
            kept.append(example)


def is_live(message: ShownMessage) -> bool:
    """Still being written, as a person sees it: a Stop button, the streaming cursor, or an open native stream."""
    if message.stream_state == "streaming" or message.text.rstrip().endswith(STREAMING_CURSOR):
        return True
    return STOP_ACTION in json.dumps(message.blocks)


def question_numbers(text: str) -> list[int]:
    return [int(n) for n in _QUESTION_RE.findall(text)]


def answer_numbers(text: str) -> list[int]:
    return [int(n) for n in _ANSWER_RE.findall(text)]


def unanswered(questions: Sequence[Question], messages: Sequence[ShownMessage]) -> int:
    """Acked questions with no complete answer on screen yet (one may still be waiting for its thread)."""
    shown = {
        (m.channel, m.thread_ts, number)
        for m in messages
        if END_MARK in m.text and not is_live(m)
        for number in answer_numbers(m.text)
    }
    return sum(1 for q in questions if q.acked and (q.channel, q.root_ts, q.number) not in shown)


def judge(
    questions: Sequence[Question],
    messages: Sequence[ShownMessage],
    histories: Mapping[tuple[str, str], Sequence[str]],
    billed: Mapping[str, int],
    ledger: Mapping[str, int],
) -> Verdict:
    """Every invariant over the run's end state. `histories` maps (channel, root ts) to the stored turns' JSON."""
    verdict = Verdict(questions=len(questions), billed=dict(billed), ledger=dict(ledger))
    verdict.not_acked = sum(1 for q in questions if not q.acked)
    shown: Counter[tuple[str, str, int]] = Counter()
    for message in messages:
        if is_live(message):
            verdict.answers_left_live += 1
            verdict.note("answers left live", f"{message.channel}/{message.ts}: {message.text[:80]!r}")
        if END_MARK in message.text:
            for number in set(answer_numbers(message.text)):
                shown[(message.channel, message.thread_ts, number)] += 1
    stored_questions: Counter[tuple[str, str, int]] = Counter()
    stored_answers: Counter[tuple[str, str, int]] = Counter()
    for (channel, root), raw_turns in histories.items():
        turns = [_parse(raw) for raw in raw_turns]
        problem = history_problem(turns)
        if problem is not None:
            verdict.invalid_histories += 1
            verdict.note("invalid histories", f"{channel}/{root}: {problem}")
        for turn in turns:
            if turn is None:
                continue
            text = _text(turn)
            if turn.get("role") == "user":
                for number in set(question_numbers(text)):
                    stored_questions[(channel, root, number)] += 1
            elif END_MARK in text:
                for number in set(answer_numbers(text)):
                    stored_answers[(channel, root, number)] += 1
    for q in questions:
        key = (q.channel, q.root_ts, q.number)
        if shown[key] >= 1:
            verdict.answered += 1
        extra = max(shown[key] - 1, stored_answers[key] - 1, stored_questions[key] - 1, 0)
        if extra:
            verdict.duplicate_answers += extra
            verdict.note(
                "duplicate answers",
                f"{q.channel}/{q.root_ts} question {q.number}: shown {shown[key]}, stored answers "
                f"{stored_answers[key]}, stored questions {stored_questions[key]}",
            )
        if stored_questions[key] == 0:
            verdict.user_turns_lost += 1
            acked = "acked" if q.acked else f"never acked in {q.attempts} deliveries"
            verdict.note("user turns lost", f"{q.channel}/{q.root_ts} question {q.number} ({acked})")
    return verdict


def history_problem(turns: Sequence[dict[str, Any] | None]) -> str | None:
    """Why a thread's stored turns are invalid, or None. See the module docstring for the rules."""
    previous_role = ""
    open_calls: set[str] = set()
    last_question = 0
    for index, turn in enumerate(turns):
        if turn is None:
            return f"turn {index} does not parse"
        role, blocks = turn.get("role"), turn.get("blocks") or []
        calls = {str(b.get("id")) for b in blocks if b.get("type") == "tool_call"}
        results = {str(b.get("tool_call_id")) for b in blocks if b.get("type") == "tool_result"}
        if open_calls and (role != "user" or not open_calls <= results):
            return f"turn {index}: tool call(s) {sorted(open_calls)} without their result right after"
        if results and not results <= open_calls:
            return f"turn {index}: tool result(s) {sorted(results - open_calls)} without their call"
        open_calls = set()
        if role == "assistant":
            if previous_role != "user":
                return f"turn {index}: an assistant turn " + ("first" if index == 0 else "after an assistant turn")
            numbers = answer_numbers(_text(turn))
            if numbers and numbers[-1] != last_question:
                return f"turn {index}: the answer to question {numbers[-1]} stored after question {last_question}"
            open_calls = calls
        elif role == "user":
            for number in question_numbers(_text(turn)):
                if number <= last_question:
                    return f"turn {index}: question {number} stored after question {last_question}"
                last_question = number
        else:
            return f"turn {index}: role {role!r}"
        previous_role = str(role)
    if open_calls:
        return f"the last turn's tool call(s) {sorted(open_calls)} have no result"
    return None


def _parse(raw: str) -> dict[str, Any] | None:
    try:
        turn = json.loads(raw)
    except ValueError:
        return None
    return turn if isinstance(turn, dict) and isinstance(turn.get("blocks"), list) else None


def _text(turn: Mapping[str, Any]) -> str:
    return "".join(str(b.get("text", "")) for b in turn.get("blocks") or [] if b.get("type") == "text")


def ledger_totals(day_hashes: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """The ledger's token totals over its day hashes (bot/storage/usage_ledger.py's field names), and requests."""
    totals: Counter[str] = Counter()
    for hash_ in day_hashes:
        for name in (*TOKEN_FIELDS, "requests"):
            totals[name] += int(hash_.get(name, 0))
    return dict(totals)


def bill_totals(reported: Mapping[str, int], calls: int) -> dict[str, int]:
    """The fake Claude's bill (the usage it reported, `FakeAnthropic.reported_usage`) in the ledger's names."""
    return {
        "input": reported.get("input_tokens", 0),
        "output": reported.get("output_tokens", 0),
        "cache_write": reported.get("cache_creation_input_tokens", 0),
        "cache_read": reported.get("cache_read_input_tokens", 0),
        "requests": calls,
    }


# A call that completed this shortly before its process was SIGKILLed may not have reached the ledger: the process
# had what the API reported for it in memory for a few milliseconds (between message_stop and its usage record).
KILL_SHADOW_S = 1.0
MAX_SHADOWED = 10  # subsets of at most 2**10 are tried


def reconcile(
    ledger: Mapping[str, int], certain: Mapping[str, int], shadowed: Sequence[Mapping[str, int]]
) -> tuple[dict[str, int], int]:
    """The bill the ledger must equal, and how many calls it lacks: `certain` (the bill of every call that had time
    to be recorded) plus the calls in `shadowed` (each a bill of one call that completed within KILL_SHADOW_S before
    a SIGKILL) that the ledger holds. The ledger may lack only whole shadowed calls; if no subset of them makes it
    equal, the full bill is returned (and the mismatch is reported as before)."""
    names = sorted({*ledger, *certain, *(k for call in shadowed for k in call)})
    full = {k: certain.get(k, 0) + sum(call.get(k, 0) for call in shadowed) for k in names}
    calls = list(shadowed) if len(shadowed) <= MAX_SHADOWED else []
    for mask in reversed(range(1 << len(calls))):  # all of them recorded first: the usual case
        kept = [call for bit, call in enumerate(calls) if mask >> bit & 1]
        candidate = {k: certain.get(k, 0) + sum(call.get(k, 0) for call in kept) for k in names}
        if all(candidate[k] == ledger.get(k, 0) for k in names):
            return candidate, len(shadowed) - len(kept)
    return full, 0
