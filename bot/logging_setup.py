"""Logging for the whole process, with every secret redacted from every record (discord.py's too)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

REDACTED = "[redacted]"

# Interaction tokens reach logs through discord.py's DEBUG output (webhook URLs, gateway payloads
# printed as JSON or as Python dicts) and through our own exceptions that quote URLs.
_TOKEN_PATTERNS = (
    re.compile(r"(/webhooks/\d+/)[^/\s?'\"]+"),
    re.compile(r"(/interactions/\d+/)[^/\s?'\"]+"),
    re.compile(r"(/evolink/callbacks/)[^/\s?'\"]+"),  # a callback URL's secret (bot/callbacks.py)
    re.compile(r"""(["']token["']\s*:\s*["'])[^"']+"""),
    re.compile(r"((?:Bearer|Bot)\s+)[A-Za-z0-9_\-.]+"),
)


class SecretRedactor:
    """Removes known secrets and token-shaped substrings from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(rf"\g<1>{REDACTED}", text)
        return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual (message, arguments and traceback), then redacts the finished line."""

    def __init__(self, redactor: SecretRedactor, fmt: str, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.redact(super().format(record))


def configure_logging(level: str, secrets: Iterable[str]) -> SecretRedactor:
    """Send every logger's records to stderr through the redacting formatter."""
    redactor = SecretRedactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter(redactor, "%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return redactor
