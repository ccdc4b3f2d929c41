"""What EvoLink promises about the files it hands out, and how long the bot waits to fetch them.

The lifetimes are EvoLink's (see /work/shared/docs/evolink-api.md): past them, a link no longer
answers and whatever needed it must come from somewhere else (the job's Discord message).
"""

from __future__ import annotations

from datetime import timedelta

import aiohttp

# A task's result links (`results`) stop answering 24 hours after the task was created.
RESULT_LINK_LIFETIME = timedelta(hours=24)
# A file uploaded to EvoLink's file host (e.g. a video's first frame) is kept for 72 hours.
UPLOADED_FILE_LIFETIME = timedelta(hours=72)
# Fetching one result from its link: a large video may take minutes in all, but a connection that
# stops sending is given up on much sooner.
RESULT_DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=300, connect=15, sock_read=60)
