"""The App Home tab, and the cost-report and budget modals its admin buttons open."""

from bot.core.i18n import _n, _t

HOME_HEADER = _t("home.header", "Claude in Slack")
HOME_INTRO = _t(
    "home.intro",
    "I'm Claude, an AI assistant made by Anthropic. I answer questions, review code, write and summarise — "
    "right here in Slack.",
)
HOME_HOW_HEADING = _t("home.how_heading", "*How to use me here*")
HOME_HOW_MENTION = _t(
    "home.how_mention",
    "• *Mention me* — write <@{bot}> in a channel I'm in and I answer in a thread. Keep talking in that thread; "
    "no need to mention me again.",
)
HOME_HOW_DM = _t(
    "home.how_dm",
    "• *Message me* — open my *Messages* tab. Every message continues our conversation; `/claude-reset` starts afresh.",
)
HOME_HOW_FILES = _t("home.how_files", "• *Files* — share images or a PDF with your question and I read them.")
HOME_COMMANDS_HEADING = _t("home.commands_heading", "*Commands*")
HOME_CMD_PERSONA = _t("home.cmd_persona", "show the personas, or set the one I use in a channel")
HOME_CMD_TOOLS = _t("home.cmd_tools", "what I can do here: tools, and the commands to use them")
HOME_CMD_RESET = _t("home.cmd_reset", "start a fresh conversation in a DM")
HOME_CMD_REVIEW = _t("home.cmd_review", "a code review of code, a diff or a message link")
HOME_CMD_SUMMARIZE = _t("home.cmd_summarize", "sum up the recent conversation in a channel")
HOME_CMD_COST_ME = _t("home.cmd_cost_me", "your own usage and cost")
HOME_CMD_COST = _t("home.cmd_cost", "the workspace's usage and cost (admins)")
HOME_CMD_BUDGET = _t("home.cmd_budget", "show or set the budgets (admins)")
# What people read about a tool's command (/claude-tools, the Home tab); a tool missing here shows its own description.
COMMAND_DESCRIPTIONS = {"/claude-review": HOME_CMD_REVIEW, "/claude-summarize": HOME_CMD_SUMMARIZE}
HOME_PERSONAS_HEADING = _t("home.personas_heading", "*Personas* — each channel picks one with `/claude-persona`")
HOME_PERSONAS_MORE = _n("home.personas_more", "…and {n} more persona.", "…and {n} more personas.")
HOME_YOUR_USAGE_HEADING = _t("home.your_usage_heading", "*Your usage in {month}*")
HOME_YOUR_USAGE = _n(
    "home.your_usage", "{cost} · {n} request · {tokens} tokens", "{cost} · {n} requests · {tokens} tokens"
)
HOME_YOUR_USAGE_NONE = _t("home.your_usage_none", "You haven't asked me anything yet this month.")
HOME_YOUR_USAGE_UNAVAILABLE = _t(
    "home.your_usage_unavailable", "Usage figures are unavailable right now; open this tab again in a moment."
)
HOME_LANGUAGE = _t(
    "home.language",
    ":globe_with_meridians: I speak to you in *{language}*, from your Slack language setting. Claude answers in "
    "the language you write in.",
)
HOME_ADMIN_HEADING = _t("home.admin_heading", "Workspace this month (admins)")
HOME_ADMIN_SPENT_BUDGET = _t("home.admin_spent_budget", "*Spent:* {spent} of {budget} ({share})")
HOME_ADMIN_SPENT_NO_BUDGET = _t("home.admin_spent_no_budget", "*Spent:* {spent} (no monthly budget set)")
HOME_ADMIN_TOP_USERS = _t("home.admin_top_users", "*Top users*")
HOME_ADMIN_TOP_CHANNELS = _t("home.admin_top_channels", "*Top channels*")
HOME_ADMIN_TOP_ROW = _t("home.admin_top_row", "{rank}. {name} — {cost}")
HOME_ADMIN_NOTHING = _t("home.admin_nothing", "No usage recorded yet this month.")
HOME_BUTTON_COST = _t("home.button_cost", "Cost report")
HOME_BUTTON_BUDGET = _t("home.button_budget", "Set budgets")
HOME_UPDATED = _t("home.updated", "Updated {when} (UTC). Open this tab again to refresh.")

MODAL_COST_TITLE = _t("modal.cost_title", "Claude usage")
MODAL_CLOSE = _t("modal.close", "Close")
MODAL_BUDGET_TITLE = _t("modal.budget_title", "Claude budgets")
MODAL_BUDGET_SAVE = _t("modal.budget_save", "Save")
MODAL_BUDGET_CANCEL = _t("modal.budget_cancel", "Cancel")
MODAL_BUDGET_MONTH = _t("modal.budget_month", "Monthly budget for the workspace (USD)")
MODAL_BUDGET_USER_DAY = _t("modal.budget_user_day", "Daily budget per person (USD)")
MODAL_BUDGET_HINT = _t("modal.budget_hint", "Leave empty for no limit.")
MODAL_BUDGET_INVALID = _t("modal.budget_invalid", "Enter an amount between {low} and {high}, or leave it empty.")
MODAL_ADMINS_ONLY = _t("modal.admins_only", "Only workspace admins can do this.")
