"""Claude in Slack: answers in threads, streaming into one edited message, with memory in Redis."""

__version__ = "0.1.0"
