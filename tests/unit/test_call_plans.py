"""Each model call planned for the model that takes it, and reserved at its worst case: pure rules, no servers."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from PIL import Image

from bot.core.conversation import MediaBlock, TextBlock, Turn
from bot.core.estimates import (
    IMAGE_MAX_TOKENS,
    PDF_PAGE_TOKENS,
    attachment_tokens,
    estimate_request_tokens,
    image_tokens,
)
from bot.core.events import AttemptFailed, ModelEvent, TextDelta, Usage, UsageSoFar
from bot.core.metering import BudgetPolicy, BudgetSpent, CallContext, CallTally, Metering
from bot.core.ports import Attachment, CallIntent, ModelLimits, ModelRequest
from bot.core.thinking import fit_to_model, refit
from bot.core.usage import WEB_SEARCH_USD, PriceTable
from bot.media.preparer import PillowMediaPreparer
from bot.storage.memory import MemoryUsageLedger

SONNET = ModelLimits(
    context_window=1_000_000,
    max_output_tokens=128_000,
    adaptive_thinking=True,
    manual_thinking=True,
    efforts=frozenset({"low", "medium", "high", "max"}),
)
HAIKU = ModelLimits(
    context_window=200_000,
    max_output_tokens=64_000,
    adaptive_thinking=False,
    manual_thinking=True,
    efforts=frozenset(),
)
ADAPTIVE_ONLY = dataclasses.replace(SONNET, manual_thinking=False)
CALL = CallContext("T1", "U1", "C1", "default")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def wanting(**intent: object) -> ModelRequest:
    return ModelRequest(
        model="claude-sonnet-5-5",
        max_tokens=1,
        system=("You are helpful.",),
        turns=(Turn.user("hi"),),
        intent=CallIntent(**intent),  # type: ignore[arg-type]
    )


def test_adaptive_thinking_goes_only_to_a_model_that_takes_it() -> None:
    request = wanting(answer_tokens=100_000, thinking="adaptive", effort="high")
    sonnet = fit_to_model(request, "claude-sonnet-5-5", SONNET)
    assert (sonnet.thinking, sonnet.max_tokens, sonnet.effort) == ("adaptive", 100_000, "high")
    haiku = fit_to_model(sonnet, "claude-haiku-4-5", HAIKU)  # fitted from the intent, not from Sonnet's plan
    assert (haiku.model, haiku.thinking, haiku.max_tokens, haiku.effort) == ("claude-haiku-4-5", None, 64_000, None)
    assert fit_to_model(haiku, "claude-sonnet-5-5", SONNET) == sonnet  # and back: nothing of Haiku's plan sticks


def test_a_triaged_budget_serves_a_model_without_adaptive_thinking() -> None:
    request = wanting(answer_tokens=4_000, thinking="adaptive", manual_budget=16_384)
    haiku = fit_to_model(request, "claude-haiku-4-5", HAIKU)
    assert (haiku.thinking, haiku.max_tokens) == (16_384, 20_384)
    assert fit_to_model(request, "claude-sonnet-5-5", SONNET).thinking == "adaptive"


def test_a_budget_becomes_adaptive_where_budgets_are_refused_and_shrinks_to_the_output_limit() -> None:
    request = wanting(answer_tokens=8_000, thinking=100_000)
    assert fit_to_model(request, "m", ADAPTIVE_ONLY).thinking == "adaptive"
    haiku = fit_to_model(request, "claude-haiku-4-5", HAIKU)
    assert (haiku.thinking, haiku.max_tokens) == (56_000, 64_000)
    assert fit_to_model(request, "bedrock-only", None).thinking == 100_000  # no Models API: sent as wanted


def test_a_request_without_an_intent_is_its_own_intent() -> None:
    request = ModelRequest(model="m", max_tokens=20_000, system=(), turns=(), thinking=16_000, effort="max")
    haiku = fit_to_model(request, "claude-haiku-4-5", HAIKU)
    assert (haiku.thinking, haiku.max_tokens, haiku.effort) == (16_000, 20_000, None)


def test_images_cost_their_pixels_after_the_apis_downscaling() -> None:
    assert image_tokens(1000, 1000) == 1334  # 1,000,000 / 750
    assert image_tokens(200, 100) == 27
    assert image_tokens(8000, 2000) == 820  # long edge down to 1568: 1568 x 392
    assert image_tokens(4000, 3000) == IMAGE_MAX_TOKENS
    assert image_tokens(None, None) == IMAGE_MAX_TOKENS


def test_a_pdf_costs_each_page_as_text_and_as_an_image() -> None:
    pdf = Attachment(kind="pdf", media_type="application/pdf", data_b64="JVBERi0x", pages=100)
    assert attachment_tokens(pdf) == 100 * PDF_PAGE_TOKENS >= 100 * (1_500 + 1_600)
    unknown = dataclasses.replace(pdf, pages=None, data_b64="A" * 8_000_000)  # a 6 MB PDF of unknown length
    assert attachment_tokens(unknown) == 100 * PDF_PAGE_TOKENS  # the API's page limit bounds the guess


def with_media(attachment: Attachment, **more: object) -> ModelRequest:
    turn = Turn(role="user", blocks=(MediaBlock(ref="F1", kind=attachment.kind, media_type="x"), TextBlock(text="?")))
    return ModelRequest(
        model="claude-sonnet-4-6",
        max_tokens=1_000,
        system=("You are helpful.",),
        turns=(turn,),
        attachments={"F1": attachment},
        **more,  # type: ignore[arg-type]
    )


def test_the_reservation_covers_a_long_pdf_and_every_search_the_call_may_make() -> None:
    metering = Metering(MemoryUsageLedger(), PriceTable(), BudgetPolicy(month_usd=100.0), clock=lambda: NOW)
    pdf = Attachment(kind="pdf", media_type="application/pdf", data_b64="JVBERi0x", pages=100)
    request = with_media(pdf)
    billed = Usage(input_tokens=100 * (1_500 + 1_600), output_tokens=1_000)  # the docs' lightest pages
    assert metering.worst_case(request) >= PriceTable().cost("claude-sonnet-4-6", billed)[0]
    assert estimate_request_tokens(request) > 100 * PDF_PAGE_TOKENS
    searching = dataclasses.replace(request, web_search=True)
    assert metering.worst_case(searching) - metering.worst_case(request) > 5 * WEB_SEARCH_USD


async def test_a_budget_fallback_is_reserved_as_planned_for_it() -> None:
    policy = BudgetPolicy(month_usd=1.0, fallback_model="claude-haiku-4-5", fallback_at=0.0)
    metering = Metering(MemoryUsageLedger(), PriceTable(), policy, clock=lambda: NOW)

    async def refit(request: ModelRequest, model: str) -> ModelRequest:
        return fit_to_model(request, model, HAIKU)

    request = fit_to_model(wanting(answer_tokens=100_000, thinking="adaptive"), "claude-sonnet-5-5", SONNET)
    admission = await metering.admit(CALL, request, refit)
    assert admission.model == "claude-haiku-4-5" and admission.request is not None
    assert admission.request.max_tokens == 64_000 and admission.request.thinking is None


async def test_the_tally_bills_failed_attempts_at_once_and_keeps_what_a_cancelled_one_used() -> None:
    started = UsageSoFar(Usage(input_tokens=500, output_tokens=1), "claude-sonnet-5-5")
    failed: list[UsageSoFar] = []

    async def on_failed(attempt: UsageSoFar) -> None:
        failed.append(attempt)

    async def events() -> AsyncIterator[ModelEvent]:
        yield started
        yield AttemptFailed(Usage(input_tokens=500, output_tokens=7), "claude-sonnet-5-5")
        assert len(failed) == 1  # billed before the next attempt starts
        yield UsageSoFar(Usage(input_tokens=300, output_tokens=1), "claude-haiku-4-5", "bedrock")
        yield TextDelta("x" * 35)  # ~10 tokens written since the last report

    tally = CallTally(on_failed)
    seen = [event async for event in tally.observe(events())]
    assert not any(isinstance(event, AttemptFailed) for event in seen)
    assert seen[1] == UsageSoFar(Usage(), "claude-sonnet-5-5")  # a Stop now would not bill the failed attempt again
    assert failed == [AttemptFailed(Usage(input_tokens=500, output_tokens=7), "claude-sonnet-5-5")]
    in_flight = tally.in_flight()
    assert in_flight is not None
    assert (in_flight.usage, in_flight.model, in_flight.provider) == (
        Usage(input_tokens=300, output_tokens=11),
        "claude-haiku-4-5",
        "bedrock",
    )


async def test_a_retry_needs_a_reservation_of_its_own() -> None:
    ledger = MemoryUsageLedger()
    metering = Metering(ledger, PriceTable(), BudgetPolicy(month_usd=0.05), clock=lambda: NOW)
    request = ModelRequest(model="claude-sonnet-4-6", max_tokens=1_000, system=("Hi.",), turns=())
    admission = await metering.admit(CALL, request)
    renewed = await metering.renew(CALL, admission, request)  # nothing billed yet: it fits again
    assert renewed is not None and renewed.reservation_id != admission.reservation_id
    # The failed attempt read enough input that another worst case no longer fits ($3 per million input tokens).
    tokens = int((0.05 - metering.worst_case(request)) / 3e-6) + 1_000
    await metering.bill_attempts(CALL, [AttemptFailed(Usage(input_tokens=tokens), "claude-sonnet-4-6")])
    with pytest.raises(BudgetSpent):
        await metering.renew(CALL, renewed, request)
    assert await ledger.month_spent("T1", "2026-11") == pytest.approx(tokens * 3e-6)


@pytest.mark.parametrize("effort", ["low", "xhigh"])
def test_an_effort_level_the_model_lacks_is_left_out(effort: str) -> None:
    fitted = fit_to_model(wanting(answer_tokens=1_000, effort=effort), "claude-sonnet-5-5", SONNET)
    assert fitted.effort == (effort if effort in SONNET.efforts else None)  # type: ignore[operator]


def test_an_adapter_keeps_the_plan_for_the_same_model_when_its_limits_cannot_be_read() -> None:
    planned = fit_to_model(wanting(answer_tokens=4_000, thinking="adaptive"), "claude-sonnet-5-5", SONNET)
    assert refit(planned, "claude-sonnet-5-5", None) == planned  # the Models API blinked: thinking is not lost
    assert refit(planned, "claude-haiku-4-5", HAIKU).thinking is None  # another model is always re-planned


def test_prepared_media_carry_the_size_the_model_reads() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000), "red").save(buffer, format="PNG")
    image, _ = PillowMediaPreparer().prepare(buffer.getvalue(), "wide.png")
    assert (image.width, image.height) == (1313, 875)  # shrunk to <= 1.15 MP before sending
    assert attachment_tokens(image) == image_tokens(1313, 875) == 1532
    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 7>>endobj\n%%EOF\n"
    document, _ = PillowMediaPreparer().prepare(pdf, "spec.pdf")
    assert document.pages == 7


def test_the_reservation_is_priced_at_the_dearest_model_the_call_may_go_to() -> None:
    metering = Metering(MemoryUsageLedger(), PriceTable(), BudgetPolicy(month_usd=100.0), clock=lambda: NOW)
    haiku = ModelRequest(model="claude-haiku-4-5", max_tokens=1_000, system=("Hi.",), turns=())
    opus_fallback = dataclasses.replace(haiku, fallback_models=("claude-opus-4-6",))  # $25/MTok output vs $5
    assert metering.worst_case(opus_fallback) == metering.worst_case(
        dataclasses.replace(haiku, model="claude-opus-4-6")
    )
    assert metering.worst_case(opus_fallback) > metering.worst_case(haiku)
