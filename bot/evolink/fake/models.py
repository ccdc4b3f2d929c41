"""What the fake EvoLink keeps: tasks (their state and progress over time), uploads, callback
attempts and the requests it received."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from multidict import CIMultiDictProxy

# Fractions of a task's duration: pending until PENDING_FRACTION, then processing; a task set up
# to fail fails at FAIL_FRACTION (real failures such as content policy come well before the end).
PENDING_FRACTION = 0.1
FAIL_FRACTION = 0.5


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]  # case-insensitive: headers["authorization"] works too
    json: Any | None  # the parsed JSON body, None when absent or not JSON (e.g. uploads)
    time: float  # clock.monotonic() when received
    request_id: str  # the x-request-id the fake answered with


@dataclass
class FakeTask:
    id: str
    kind: Literal["image", "video"]
    model: str
    prompt: str
    created: int  # unix seconds, from clock.now()
    started_at: float  # clock.monotonic()
    duration: float  # seconds of clock time until completion
    estimated_time: int
    credits_reserved: Decimal
    result_count: int
    size: tuple[int, int] | None = None  # images
    video_duration: int | None = None  # videos
    quality: str | None = None
    image_url: str | None = None
    image_urls: tuple[str, ...] = ()  # an edit's pictures (1 to edit, 2 to fuse)
    edit_source: bytes | None = None  # the first picture's bytes, when the fake could read it: results derive from it
    prompt_extend: bool = True
    callback_url: str | None = None  # called when the task ends
    failure: tuple[str, str] | None = None  # (code, message): the task ends failed
    result_query: str = ""  # added to each result link, e.g. "?sig=...": see result_link_query
    # Progress is share ** exponent over the processing phase: 1 rises linearly, above 1 starts
    # slow and speeds up, below 1 starts fast and slows down.
    progress_exponent: float = 1.0

    @property
    def ends_at(self) -> float:
        """The monotonic clock time at which the task becomes completed (or failed)."""
        share = FAIL_FRACTION if self.failure is not None else 1.0
        return self.started_at + share * self.duration

    def state_at(self, now: float) -> tuple[str, int]:
        """(status, progress) at monotonic clock time `now`: a pure function of elapsed time,
        so progress never goes backwards."""
        fraction = (now - self.started_at) / self.duration if self.duration > 0 else 1.0
        if self.failure is not None and fraction >= FAIL_FRACTION:
            return "failed", _progress(FAIL_FRACTION, self.progress_exponent)
        if fraction >= 1.0:
            return "completed", 100
        if fraction < PENDING_FRACTION:
            return "pending", 0
        return "processing", _progress(fraction, self.progress_exponent)

    def to_wire(self, now: float, base_url: str) -> dict[str, Any]:
        status, progress = self.state_at(now)
        wire: dict[str, Any] = {
            "id": self.id,
            "created": self.created,
            "model": self.model,
            "object": f"{self.kind}.generation.task",
            "type": self.kind,
            "status": status,
            "progress": progress,
            "task_info": {
                "can_cancel": status in ("pending", "processing"),
                "estimated_time": self.estimated_time,
            },
            "usage": {
                "billing_rule": "per_call",
                "credits_reserved": float(self.credits_reserved),
                "user_group": "default",
            },
        }
        if status == "completed":
            wire["results"] = [
                f"{base_url}/results/{self.id}/{i}{self.result_query}" for i in range(self.result_count)
            ]
        elif status == "failed" and self.failure is not None:
            code, message = self.failure
            wire["error"] = {"code": code, "message": message, "type": "task_error"}
        return wire


def _progress(fraction: float, exponent: float = 1.0) -> int:
    # Over the processing phase (after PENDING_FRACTION); 100 only once completed.
    share = max(0.0, (fraction - PENDING_FRACTION) / (1.0 - PENDING_FRACTION))
    return max(0, min(99, int(share**exponent * 100)))


@dataclass
class FakeUpload:
    data: bytes
    content_type: str
    filename: str


@dataclass(frozen=True)
class CallbackAttempt:
    task_id: str
    status: str  # the task's status in the body sent
    time: float  # clock.monotonic() when sent
    answer: int | None  # the HTTP status received; None when the call failed (refused, timeout)
