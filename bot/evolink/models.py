"""Typed results of EvoLink calls.

The `from_wire` constructors are deliberately tolerant: only the fields the API documents as
always present are required (a missing one raises ValueError, which the client turns into
UnexpectedResponse); every optional field is type-checked and dropped when it is not what the
docs describe, never trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class TaskStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # any status the docs do not list; final, and treated as a failure

    @classmethod
    def parse(cls, value: object) -> TaskStatus:
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        return cls.UNKNOWN


@dataclass(frozen=True)
class TaskError:
    code: str
    message: str


@dataclass(frozen=True)
class Task:
    id: str
    status: TaskStatus
    progress: int  # 0..100
    results: tuple[str, ...]
    estimated_time: float | None  # seconds, from task_info.estimated_time
    credits_reserved: Decimal | None  # usage.credits_reserved: the real pre-charge
    error: TaskError | None
    model: str | None
    created: int | None  # unix seconds

    @property
    def is_final(self) -> bool:
        return self.status not in (TaskStatus.PENDING, TaskStatus.PROCESSING)

    @property
    def succeeded(self) -> bool:
        return self.status is TaskStatus.COMPLETED and len(self.results) > 0

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Task:
        if not isinstance(data, dict):
            raise ValueError("task is not a JSON object")
        task_id = data.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("task has no id")
        if "status" not in data:
            raise ValueError("task has no status")
        task_info = _dict(data.get("task_info"))
        usage = _dict(data.get("usage"))
        results = data.get("results")
        return cls(
            id=task_id,
            status=TaskStatus.parse(data.get("status")),
            progress=_progress(data.get("progress")),
            results=tuple(r for r in results if isinstance(r, str) and r)
            if isinstance(results, list)
            else (),
            estimated_time=_non_negative_float(task_info.get("estimated_time")),
            credits_reserved=_decimal(usage.get("credits_reserved")),
            error=_task_error(data.get("error")),
            model=_str(data.get("model")),
            created=_int(data.get("created")),
        )


@dataclass(frozen=True)
class AccountBalance:
    remaining_credits: Decimal  # the account ("user") balance
    used_credits: Decimal
    key_remaining_credits: Decimal | None  # this key's limit ("token"); None when not reported
    key_unlimited: bool

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AccountBalance:
        payload = _dict(_dict(data).get("data"))
        user = _dict(payload.get("user"))
        remaining = _decimal(user.get("remaining_credits"), allow_negative=True)
        used = _decimal(user.get("used_credits"))
        if remaining is None or used is None:
            raise ValueError("balance lacks data.user.remaining_credits/used_credits")
        token = _dict(payload.get("token"))
        return cls(
            remaining_credits=remaining,
            used_credits=used,
            key_remaining_credits=_decimal(token.get("remaining_credits"), allow_negative=True),
            key_unlimited=token.get("unlimited_credits") is True,
        )


@dataclass(frozen=True)
class UploadedFile:
    file_id: str
    file_url: str
    expires_at: str | None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> UploadedFile:
        payload = _dict(_dict(data).get("data"))
        file_id = _str(payload.get("file_id"))
        file_url = _str(payload.get("file_url"))
        if not file_id or not file_url:
            raise ValueError("upload answer lacks data.file_id/file_url")
        return cls(file_id=file_id, file_url=file_url, expires_at=_str(payload.get("expires_at")))


# --- tolerant field readers -------------------------------------------------------------------


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    # bool is an int subclass; a JSON true is not a number.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _non_negative_float(value: object) -> float | None:
    number = _number(value)
    return number if number is not None and number >= 0 else None


def _progress(value: object) -> int:
    number = _number(value)
    return 0 if number is None else max(0, min(100, int(number)))


def _decimal(value: object, *, allow_negative: bool = False) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        # str() first: Decimal(0.1) would carry the binary float's full expansion.
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or (number < 0 and not allow_negative):
        return None
    return number


def _task_error(value: object) -> TaskError | None:
    if not isinstance(value, dict):
        return None
    code = value.get("code")
    message = value.get("message")
    return TaskError(
        # `code` is a string today and was an integer before 2026: accept both, keep a string.
        code=str(code) if isinstance(code, str | int) and not isinstance(code, bool) and code != ""
        else "unknown_error",
        message=message if isinstance(message, str) else "",
    )
