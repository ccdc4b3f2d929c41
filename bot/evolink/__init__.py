"""EvoLink API access: a thin typed client, its result and error types, and a fake server
(`FakeEvoLink`, for tests and the demo mode)."""

from .client import EvoLinkClient
from .errors import (
    BadRequest,
    EvoLinkConnectionError,
    EvoLinkError,
    EvoLinkTimeout,
    InsufficientQuota,
    PermissionDenied,
    RateLimited,
    ServerError,
    TaskNotFound,
    Unauthorized,
    UnexpectedResponse,
)
from .fake import FakeEvoLink, FakeTask, RecordedRequest
from .models import AccountBalance, Task, TaskError, TaskStatus, UploadedFile

__all__ = [
    "AccountBalance",
    "BadRequest",
    "EvoLinkClient",
    "EvoLinkConnectionError",
    "EvoLinkError",
    "EvoLinkTimeout",
    "FakeEvoLink",
    "FakeTask",
    "InsufficientQuota",
    "PermissionDenied",
    "RateLimited",
    "RecordedRequest",
    "ServerError",
    "Task",
    "TaskError",
    "TaskNotFound",
    "TaskStatus",
    "Unauthorized",
    "UnexpectedResponse",
    "UploadedFile",
]
