"""/claude-cost, /claude-budget, the weekly summary and budget notices."""

from bot.core.i18n import _n, _t

COST_USAGE = _t(
    "cost.usage",
    "Usage: `/claude-cost [today | 7d | 30d | YYYY-MM]` shows this workspace's Claude usage and cost (admins); "
    "`/claude-cost me [period]` shows your own; `/claude-cost export [period]` uploads a CSV here (admins). "
    "Without a period: today.",
)
COST_REFUSAL = _t(
    "cost.refusal",
    "Only workspace admins can see the workspace's Claude costs. `/claude-cost me` shows your own usage, for any "
    "period.",
)
COST_EXPORT_EMPTY = _t("cost.export_empty", "No Claude usage recorded for {period}; nothing to export.")
COST_EXPORT_TITLE = _t("cost.export_title", "Claude usage — {period}")
COST_EXPORT_COMMENT = _n(
    "cost.export_comment",
    "<@{user}> exported Claude usage for {period} ({n} row).",
    "<@{user}> exported Claude usage for {period} ({n} rows).",
)
COST_EXPORT_UPLOADED = _n(
    "cost.export_uploaded",
    "Uploaded `{filename}` ({n} row) to this channel.",
    "Uploaded `{filename}` ({n} rows) to this channel.",
)
COST_EXPORT_INLINE = _t(
    "cost.export_inline",
    "I can't upload files in this channel (invite me with `/invite @claude`), so here is `{filename}`:",
)
COST_EXPORT_INLINE_CUT = _n(
    "cost.export_inline_cut",
    "_Showing the first {n} of {total} rows. Run the export in a channel I'm in, or in a DM with me, for the whole "
    "file._",
    "_Showing the first {n} of {total} rows. Run the export in a channel I'm in, or in a DM with me, for the whole "
    "file._",
)

PERIOD_TODAY = _t("period.today", "today")
PERIOD_LAST_DAYS = _n("period.last_days", "the last {n} day", "the last {n} days")
PERIOD_MONTH_SO_FAR = _t("period.month_so_far", "{month} so far")
PERIOD_WEEK = _t("period.week", "week {week}")
PERIOD_BAD_DAYS = _t("period.bad_days", "A period in days must be 1 to {max} days, like `7d` or `30d`.")
PERIOD_BAD_MONTH = _t("period.bad_month", "`{text}` is not a month; use YYYY-MM, like `{example}`.")
PERIOD_NOT_STARTED = _t("period.not_started", "{month} has not started yet.")
PERIOD_UNKNOWN = _t(
    "period.unknown", "I don't know the period `{text}`; try `today`, `7d`, `30d` or a month like `2026-11`."
)
PERIOD_RANGE = _t("period.range", "{start} to {end}")
PERIOD_UTC = _t("period.utc", "{days} (UTC)")

REPORT_TITLE_WORKSPACE = _t("report.title_workspace", "Claude usage — {period}: {cost}")
REPORT_TITLE_PERSONAL = _t("report.title_personal", "Your usage — {period}: {cost}")
REPORT_EMPTY = _t("report.empty", "No Claude usage recorded for {period} ({days}).")
REPORT_REQUESTS = _t("report.requests", "Requests")
REPORT_TOTAL_COST = _t("report.total_cost", "Total cost")
REPORT_INPUT_TOKENS = _t("report.input_tokens", "Input tokens")
REPORT_OUTPUT_TOKENS = _t("report.output_tokens", "Output tokens")
REPORT_CACHE_WRITE_TOKENS = _t("report.cache_write_tokens", "Cache write tokens")
REPORT_CACHE_READ_TOKENS = _t("report.cache_read_tokens", "Cache read tokens")
REPORT_WEB_SEARCHES = _t("report.web_searches", "Web searches")
REPORT_SAVED_BY_CACHING = _t("report.saved_by_caching", "Saved by caching")
REPORT_TOP_USERS = _t("report.top_users", "Top users")
REPORT_TOP_CHANNELS = _t("report.top_channels", "Top channels")
REPORT_TOP_MODELS = _t("report.top_models", "Top models")
REPORT_BY_PROVIDER = _t("report.by_provider", "By provider")
REPORT_ROW = _n(
    "report.row",
    "{rank}. {name} — {cost}{share} · {n} request · {input} in / {output} out",
    "{rank}. {name} — {cost}{share} · {n} requests · {input} in / {output} out",
)
REPORT_UNKNOWN = _t("report.unknown", "_unknown_")
REPORT_DIRECT_MESSAGE = _t("report.direct_message", "a direct message")
REPORT_UNPRICED = _n(
    "report.unpriced",
    ":warning: {n} call used a model with no known price and is not in the cost; its tokens are counted.",
    ":warning: {n} calls used a model with no known price and are not in the cost; their tokens are counted.",
)
REPORT_CHART_DAY = _t("report.chart_day", "Cost per day")
REPORT_CHART_WEEK = _t("report.chart_week", "Cost per week (from the date shown)")
REPORT_CHART_DAYS = _t("report.chart_days", "Cost per {span} days (from the date shown)")
REPORT_FEEDBACK_HEADING = _t("report.feedback_heading", "*Feedback on answers*")
REPORT_FEEDBACK_ROW = _t("report.feedback_row", "• {persona} — :+1: {up} · :-1: {down} ({share} positive)")
REPORT_FEEDBACK_SUMMARY = _t("report.feedback_summary", "Feedback: {up} helpful, {down} not helpful")
REPORT_FALLBACK_FIGURES = _t(
    "report.fallback_figures",
    "{requests} requests · {input} input / {output} output tokens · {searches} web searches · {saved} saved by caching",
)

BUDGET_USAGE = _t(
    "budget.usage",
    "Usage: `/claude-budget` shows the budgets; `/claude-budget month 200` sets the workspace's monthly budget "
    "(USD); `/claude-budget user-day 10` sets each person's daily budget; `off` instead of a number removes one.",
)
BUDGET_ADMINS_ONLY = _t("budget.admins_only", "Only workspace admins can see or change Claude's budgets.")
BUDGET_OUT_OF_RANGE = _t("budget.out_of_range", "A budget must be between {low} and {high}.")
BUDGET_NO_LIMIT = _t("budget.no_limit", "no limit")
BUDGET_SUMMARY = _t(
    "budget.summary",
    "*Claude budgets for this workspace*\n• Monthly: {month} (spent so far this month: {spent})\n"
    "• Per person per day: {per_user}",
)
BUDGET_WARNING = _t(
    "budget.warning",
    ":warning: Claude has used {spent} of this workspace's {budget} budget for {month} ({share}). "
    "Once it is all used, Claude stops answering until the month ends.",
)
BUDGET_USER_SPENT = _n(
    "budget.user_spent",
    "Your daily Claude budget ({budget}) is spent. It resets at midnight UTC, in about {n} hour.",
    "Your daily Claude budget ({budget}) is spent. It resets at midnight UTC, in about {n} hours.",
)
BUDGET_MONTH_SPENT = _t(
    "budget.month_spent",
    "This workspace's Claude budget for {month}{amount} is spent. It resets on {reset}; an admin can raise it with "
    "`/claude-budget`.",
)
BUDGET_AMOUNT = _t("budget.amount", " ({amount})")
