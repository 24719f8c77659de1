"""Errors and refusals that can come from anywhere: storage, access, Slack, Claude, files."""

from bot.core.i18n import _t

STORAGE_UNAVAILABLE = _t("error.storage_unavailable", "My memory store (Redis) is unreachable right now.")
THREAD_BUSY = _t("error.thread_busy", "This thread is busy with another answer; please try again shortly.")
TOKEN_REFRESH_BUSY = _t(
    "error.token_refresh_busy", "Another process is refreshing this workspace's Slack token; please try again shortly."
)
LEASE_LOST = _t(
    "error.lease_lost",
    "I lost hold of this thread while my memory store was unreachable, and another answer took over; this answer "
    "was not saved, so I won't remember it here.",
)
ANSWER_NOT_SAVED = _t(
    "error.answer_not_saved",
    "My memory store stayed unreachable, so this answer could not be saved; I won't remember it in this thread.",
)
REQUEST_ID_SUFFIX = _t("error.request_id_suffix", "{message} (request id `{request_id}`)")
NOT_ALLOWED = _t(
    "access.not_allowed",
    "Sorry, Claude isn't enabled for you in this conversation. If you think it should be, ask a workspace admin.",
)
RESTARTING = _t("server.restarting", "I'm restarting right now; please try again in a moment.")
NOT_IN_CHANNEL = _t(
    "slack.not_in_channel",
    "I'm not a member of this channel, so I can't post here. Invite me with `/invite @claude` and try again.",
)

MODEL_OVERLOADED = _t("model.overloaded", "Claude is overloaded right now.")
MODEL_RATE_LIMITED = _t("model.rate_limited", "Claude's rate limit for this bot was reached.")
MODEL_BAD_CREDENTIALS = _t(
    "model.bad_credentials", "Claude rejected the bot's credentials; an admin needs to check {settings}."
)
MODEL_NOT_FOUND = _t(
    "model.not_found", "The configured Claude model was not found; an admin needs to check CLAUDE_MODEL."
)
MODEL_BAD_REQUEST = _t("model.bad_request", "Claude could not process this request.")
MODEL_INTERNAL_ERROR = _t("model.internal_error", "Claude had an internal error.")
MODEL_SILENT = _t("model.silent", "Claude stopped responding.")
MODEL_CONNECTION_DROPS = _t("model.connection_drops", "The connection to Claude kept dropping.")
MODEL_CUT_OFF = _t("model.cut_off", "Claude's answer was cut off.")
MODEL_NO_TOKEN_COUNT = _t("model.no_token_count", "None of the configured Claude providers can count tokens.")

FILE_MISSING_SCOPE = _t(
    "file.missing_scope", "I couldn't download that file from Slack; the bot may be missing the files:read permission."
)
FILE_TIMEOUT = _t("file.timeout", "Downloading that file from Slack took longer than {seconds} seconds.")
FILE_CONNECTION_FAILED = _t(
    "file.connection_failed", "I couldn't download that file from Slack: the connection failed."
)
FILE_TOO_MANY_REDIRECTS = _t(
    "file.too_many_redirects", "I couldn't download that file from Slack: it redirected too many times."
)
FILE_DOWNLOAD_FAILED = _t("file.download_failed", "I couldn't download that file from Slack.")
FILE_REDIRECT_REFUSED = _t(
    "file.redirect_refused", "I couldn't download that file from Slack: it redirected somewhere I don't download from."
)
FILE_HTTP_ERROR = _t("file.http_error", "I couldn't download that file from Slack (HTTP {status}).")
FILE_NOT_ON_SLACK = _t("file.not_on_slack", "I couldn't download that file: it isn't stored on Slack.")
FILE_TOO_LARGE = _t("file.too_large", "That file is {size}; I can download files up to {limit}.")
FILE_LARGER_THAN = _t("file.larger_than", "That file is larger than {limit}; I can download files up to {limit}.")
FILE_UNDOWNLOADABLE = _t(
    "file.undownloadable", "I can't download that file (it was deleted, is external, or is over the plan's limit)."
)
IMAGE_TOO_LARGE = _t("media.image_too_large", "That image is {size}; I can read images up to {limit}.")
IMAGE_TOO_MANY_PIXELS = _t(
    "media.image_too_many_pixels",
    "That image is too large for me to open (over {megapixels} megapixels); a JPEG photo (not progressive) of up "
    "to {jpeg_megapixels} megapixels, or a smaller image, works.",
)
PDF_TOO_LARGE = _t("media.pdf_too_large", "That PDF is {size}; I can read PDFs up to {limit}.")
PDF_TOO_MANY_PAGES = _t(
    "media.pdf_too_many_pages", "That PDF has {pages} pages; I can read PDFs of up to {limit} pages."
)
MEGABYTES = _t("media.megabytes", "{value} MB")
FILE_UNSUPPORTED = _t("media.unsupported", "I can't read that kind of file.")
IMAGE_DAMAGED = _t("media.image_damaged", "I couldn't open that image; it may be damaged.")
FILES_SUPPORTED = _t("media.supported", "I can read PNG, JPEG, GIF and WebP images and PDFs.")
