"""Units the whole bot shares: credits as integer milli-credits, times as Unix milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

MILLI = 1000


def to_milli(credits: Decimal | int | float | str) -> int:
    """Credits -> milli-credits. Floats go through their shortest text form, so 1.1 stays 1.1."""
    value = Decimal(str(credits)) if isinstance(credits, float) else Decimal(credits)
    return int(value * MILLI)


def format_credits(milli: int) -> str:
    """1500 -> '1.5', 2000 -> '2'."""
    return format(Decimal(milli) / MILLI, "f")


def to_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)
