"""Allowance periods: a day, a week (from Monday) or a month, each starting at 00:00 UTC."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from enum import StrEnum


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The [start, end) of the period containing `now`."""
        day = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
        if self is Period.DAY:
            return day, day + timedelta(days=1)
        if self is Period.WEEK:
            start = day - timedelta(days=day.weekday())
            return start, start + timedelta(days=7)
        start = day.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return start, following

    @property
    def longest_days(self) -> int:
        """The most days one such period holds: a ceiling per day times this bounds the period."""
        return {"day": 1, "week": 7, "month": 31}[self.value]

    @property
    def adjective(self) -> str:
        return {"day": "daily", "week": "weekly", "month": "monthly"}[self.value]

    @property
    def this(self) -> str:
        """'today', 'this week', 'this month': for sentences members read."""
        return "today" if self is Period.DAY else f"this {self.value}"
