"""A fake EvoLink server: a real aiohttp app speaking the documented wire format.

Used by tests, local development and the bot's demo mode. Everything time-related goes through
an injected `Clock`, so with a `ScaledClock` a 120 s video "renders" in a fraction of a second
while the bot's cadence rules keep their proportions.

What it simulates (see docs/evolink-api.md), and where:
- the API routes (create image/video tasks, read tasks, credits) with the documented validation
  (tasks.py, validation.py), the files host (upload; files.py), error bodies (base.py) and an
  `x-request-id` on every answer (server.py);
- input pictures checked as EvoLink checks them on download: its own uploads, and pictures it
  fetches from the base URLs it is given (`input_origins`, e.g. a fake Discord's CDN); any other
  URL passes unchecked, since the fake reaches no address it was not given (inputs.py);
- task progress computed from the clock at read time: pending, processing, then completed with
  result URLs served by the fake itself (real PNGs at the requested size, or for an edit the
  first input picture changed: pictures.py), or failed (models.py);
- the CDN's refusal of default library User-Agents on result downloads (files.py);
- injected HTTP failures (`fail_next`, `fail_every`) and task failures (`fail_tasks_matching`),
  slow answers: create answers delayed past a client's timeout (`stall_next_create`) and result
  downloads that wait until the test lets them through (`hold_results`) (faults.py);
- a crowd of tasks (the load benchmark): each task's duration spread at random around the
  configured seconds (`duration_spread`), progress that rises faster or slower than linearly
  (`progress_curve_spread`), so a client's completion guess is never exact (tasks.py, models.py);
- callbacks: a POST of the task to its `callback_url` when it ends, retried after 1, 2 and 4 s, as
  documented. EvoLink only calls public HTTPS hosts; this fake also calls `http://` on loopback,
  because tests have no certificate. Every attempt is recorded in `callbacks` (callbacks.py).

`FakeEvoLink` (server.py) puts the parts together: its settings and state, lifecycle, middleware
and route table.

Not simulated: a cancel route (none is documented), result expiry after 24 hours.
"""

from bot.evolink.fake.callbacks import CALLBACK_RETRY_DELAYS, CALLBACK_TIMEOUT
from bot.evolink.fake.faults import FakeHold
from bot.evolink.fake.files import MAX_UPLOAD_BYTES, PLACEHOLDER_MP4, UPLOAD_TYPES
from bot.evolink.fake.models import (
    FAIL_FRACTION,
    PENDING_FRACTION,
    CallbackAttempt,
    FakeTask,
    FakeUpload,
    RecordedRequest,
)
from bot.evolink.fake.pictures import render_png
from bot.evolink.fake.server import FakeEvoLink
from bot.evolink.fake.tasks import (
    EDIT_MODEL,
    IMAGE_CREDITS,
    IMAGE_MODEL,
    QUALITY_FACTORS,
    VIDEO_CREDITS_PER_SECOND,
    VIDEO_MODEL,
)

__all__ = [
    "CallbackAttempt",
    "FakeEvoLink",
    "FakeHold",
    "FakeTask",
    "FakeUpload",
    "RecordedRequest",
    "render_png",
    "PLACEHOLDER_MP4",
    # Constants of the old single module, importable from here as before.
    "CALLBACK_RETRY_DELAYS",
    "CALLBACK_TIMEOUT",
    "FAIL_FRACTION",
    "EDIT_MODEL",
    "IMAGE_CREDITS",
    "IMAGE_MODEL",
    "MAX_UPLOAD_BYTES",
    "PENDING_FRACTION",
    "QUALITY_FACTORS",
    "UPLOAD_TYPES",
    "VIDEO_CREDITS_PER_SECOND",
    "VIDEO_MODEL",
]
