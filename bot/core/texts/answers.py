"""What an answer shows around Claude's words: placeholder, statuses, notes, buttons, approvals, the pane."""

from bot.core.i18n import _n, _t

PLACEHOLDER = _t("answer.placeholder", "_Thinking…_")
COMING_WHEN_READY = _t(
    "answer.coming_when_ready",
    "Many people are asking me right now: your answer will appear in this thread, complete, as soon as it is ready.",
)
THINKING_SECONDS = _t("answer.thinking_seconds", "_Thinking… {seconds}s_")
PANE_THINKING_STATUS = _t("answer.pane_thinking_status", "is thinking…")
STATUS_STORAGE_RETRYING = _t("answer.status_storage_retrying", "_My memory store is unreachable; retrying…_")
STATUS_RESTARTING = _t("answer.status_restarting", "_Claude hiccupped; starting the answer again…_")
STATUS_WAITING_APPROVAL = _t("answer.status_waiting_approval", "_Waiting for approval…_")
GENERIC_FAILURE = _t("answer.generic_failure", "Something went wrong on my side while answering.")
INTERRUPTED = _t("answer.interrupted", "I was restarted before finishing this answer; please ask again.")
LENGTH_LIMIT = _t("answer.length_limit", "The answer reached its length limit and stops here.")
REFUSED = _t("answer.refused", "Claude declined to continue this answer.")
EMPTY = _t("answer.empty", "_(Claude returned an empty answer.)_")
STOPPED = _t("answer.stopped", "_Stopped._")
WAITING_FOR_STORAGE = _t(
    "answer.waiting_for_storage", "My memory store is unreachable just now; I'll answer as soon as it is back."
)
ANSWER_NOT_SHOWN = _t(
    "answer.not_shown", "Slack would not accept part of this answer, so it is incomplete here; please ask again."
)

FILES_NOT_READ = _t("answer.files_not_read", "Files can't be read here; only text is answered.")
MEDIA_LEFT_OUT = _n(
    "answer.media_left_out",
    "{n} older image or PDF in this thread was left out of this answer to stay within Claude's limits.",
    "{n} older images or PDFs in this thread were left out of this answer to stay within Claude's limits.",
)
CONTEXT_SHORTENED = _t(
    "answer.context_shortened", "Part of this exchange was too long for Claude's context window and was shortened."
)

REGENERATE_TOO_OLD = _t("regenerate.too_old", "This answer is too old to regenerate; please ask again.")
REGENERATE_NOT_YOURS = _t("regenerate.not_yours", "Only the person who asked can regenerate this answer.")
REGENERATE_STILL_WRITING = _t(
    "regenerate.still_writing", "This answer is still being written; stop it first, or wait for it to finish."
)
REGENERATE_ALREADY = _t(
    "regenerate.already", "This answer was already regenerated; the newer one is further down the thread."
)
REGENERATE_NOT_LATEST = _t("regenerate.not_latest", "Only the latest answer in a conversation can be regenerated.")
REGENERATE_MOVED_ON = _t(
    "regenerate.moved_on", "This answer can no longer be regenerated: the conversation has moved on."
)

STOP_NOT_YOURS = _t("stop.not_yours", "Only the person who asked can stop this answer.")
STOP_FINISHED = _t("stop.finished", "This answer has already finished.")
VOTE_THANKS = _t("vote.thanks", "Thanks for the feedback!")
VOTE_SAME = _t("vote.same", "Your feedback on this answer is already recorded.")
VOTE_TOO_OLD = _t("vote.too_old", "This answer is too old to rate.")

BUTTON_STOP = _t("button.stop", ":black_square_for_stop: Stop")
BUTTON_STOP_LABEL = _t("button.stop_label", "Stop writing this answer")
BUTTON_GOOD_LABEL = _t("button.good_label", "Good answer")
BUTTON_BAD_LABEL = _t("button.bad_label", "Bad answer")
BUTTON_REGENERATE = _t("button.regenerate", ":arrows_counterclockwise: Regenerate")
BUTTON_REGENERATE_LABEL = _t("button.regenerate_label", "Answer this question again")

APPROVAL_PROMPT = _t("approval.prompt", "<@{user}>, Claude wants to use *{tool}*. Approve?")
APPROVAL_APPROVE = _t("approval.approve", "Approve")
APPROVAL_DENY = _t("approval.deny", "Deny")
APPROVAL_APPROVED = _t("approval.approved", ":white_check_mark: *{tool}* was approved.")
APPROVAL_NOT_RUN = _t("approval.not_run", ":no_entry_sign: *{tool}* was not run: {reason}.")
APPROVAL_DENIED = _t("approval.denied", "denied")
APPROVAL_NOT_YOURS = _t("approval.not_yours", "Only the person who asked can approve or deny this.")
APPROVAL_EXPIRED = _t("approval.expired", "This request has already been decided or has expired.")

TOOL_SEARCHING_WEB = _t("tool.searching_web", "Searching the web…")
TOOL_READING_THREAD = _t("tool.reading_thread", "Reading the thread in {where}…")
TOOL_READING = _t("tool.reading", "Reading {where}…")
TOOL_POSTING = _t("tool.posting", "Posting a message in {where}")
TOOL_THIS_CHANNEL = _t("tool.this_channel", "this channel")
TOOL_LOOKING_BACK = _t("tool.looking_back", "Looking back through this thread…")
TOOL_MCP = _t("tool.mcp", "Using {tool} on {server}…")

PANE_GREETING = _t("pane.greeting", "Hi! Ask me anything here, or start with one of the suggestions.")
PANE_GREETING_PERSONA = _t(
    "pane.greeting_persona",
    "Hi! You're in <#{channel}>, so I'll answer as {emoji}*{persona}*: {description} "
    "Ask me anything here, or start with one of the suggestions.",
)
PANE_SUGGESTIONS_TITLE = _t("pane.suggestions_title", "Try asking")
