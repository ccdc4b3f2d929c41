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

# HTTP_HOST: every interface of the container (the bot's own default is loopback only). The
# HEALTHCHECK asks from inside, but a published port (EvoLink callbacks through a reverse proxy)
# arrives on the container's network interface; which host addresses reach it is `ports:`'s choice.
ENV DATABASE_PATH=/data/bot.db \
    HTTP_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME /data
USER bot

# The web server (HTTP_PORT): /healthz, and EvoLink callbacks when PUBLIC_BASE_URL is set.
EXPOSE 8080
# Healthy = connected to Discord and the database answers; `healthcheck` needs no secret.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-m", "bot", "healthcheck"]

# SIGTERM (docker stop) stops the bot cleanly.
CMD ["python", "-m", "bot"]
