"""The Discord side of a job's message: routing and throttling its edits (message.py), fitting its
files to the upload limit (fitting.py), finding a finished job's files again (refetch.py), and
Discord's size limits (limits.py)."""

from bot.delivery.message import JobMessage, JobMessages

__all__ = ["JobMessage", "JobMessages"]
