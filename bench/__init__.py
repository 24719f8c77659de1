"""Load harness: the real bot, as its own process, against the project's fake Slack and fake Claude.

Run it with `python -m bench.load`, or `python -m bench.soak` for the soak under faults (see BENCHMARKS.md).
Nothing here imports the `bot` package: the harness talks to the bot over HTTP, exactly as Slack does, and watches
what reaches the fakes and Redis.
"""
