# The bot in a small image: slim Python, a non-root user, the database on the /data volume.
FROM python:3.12-slim

# ffmpeg re-encodes videos that are too large for Discord.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 bot \
    && mkdir /data && chown bot:bot /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-cache-dir .

ENV DATABASE_PATH=/data/bot.db \
    PYTHONUNBUFFERED=1
VOLUME /data
USER bot

# SIGTERM (docker stop) stops the bot cleanly.
CMD ["python", "-m", "bot"]
