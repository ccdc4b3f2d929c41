"""Typed settings from the environment (and a `.env` file), validated once at start, secrets redacted."""

from __future__ import annotations

import ipaddress
import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.db.engine import is_postgresql_url
from bot.media.sources import DISCORD_MEDIA_BASE_URLS
from bot.pricing import Prices

DISCORD_API_DEFAULT = "https://discord.com/api/v10"


_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def _http_url(value: str) -> str:
    """A valid http(s) URL, kept as text without a trailing slash (paths are appended to it)."""
    try:
        return str(_HTTP_URL.validate_python(value)).rstrip("/")
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise PydanticCustomError(error["type"], error["msg"]) from None


BaseUrl = Annotated[str, AfterValidator(_http_url)]
# Credits are EvoLink credits; decimals so "1.5" stays exactly 1.5 (stored as milli-credits).
Credits = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=3)]


class Settings(BaseSettings):
    """Everything the operator can set. Names match the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # `BOT_DAILY_BUDGET=` left empty in a .env means "not set", not "malformed".
        env_ignore_empty=True,
        # Without this, a malformed value would be echoed in the error (a token is a secret).
        hide_input_in_errors=True,
    )

    discord_token: SecretStr = Field(min_length=1)
    evolink_api_key: SecretStr = Field(min_length=1)

    database_path: Path = Path("./data/bot.db")
    # PostgreSQL instead of the SQLite file, for several processes sharing the jobs, the line and
    # the credits: postgresql://user:password@host:port/name. A secret (it holds the password).
    database_url: SecretStr | None = None
    # With DATABASE_URL: how long a job's claim lasts without renewal (renewed every third of it).
    # A process that stops answering has its jobs taken over by another one after this long.
    lease_seconds: float = Field(default=45, ge=1, le=3600)
    evolink_base_url: BaseUrl = "https://api.evolink.ai"
    evolink_files_base_url: BaseUrl = "https://files-api.evolink.ai"
    discord_api_base_url: BaseUrl = DISCORD_API_DEFAULT
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # Credits: every member gets this many per guild per UTC day; an image costs IMAGE_CREDITS, an
    # edited image EDIT_IMAGE_CREDITS (EvoLink prices it as text to image); a video costs VIDEO_CREDITS_PER_SECOND (at 720p) x its seconds x its quality's multiplier.
    # Defaults follow EvoLink's public pricing in late 2026. 40 a day covers the default /animate
    # (5 s at 720p: 25.5) and a few default /imagine (2 each) on the same day.
    default_daily_credits: Credits = Decimal(40)
    image_credits: Credits = Decimal(2)
    edit_image_credits: Credits = Decimal(2)
    video_credits_per_second: Credits = Decimal("5.1")
    video_480p_multiplier: Credits = Decimal("0.5")
    video_1080p_multiplier: Credits = Decimal("1.67")
    # Defaults for guilds whose moderators set nothing: how many jobs one member may run at once,
    # and how many more may wait in line behind them.
    default_max_concurrent_jobs: int = Field(default=2, ge=1, le=50)
    max_waiting_jobs_per_member: int = Field(default=10, ge=0, le=100)
    # The operator's ceilings, per UTC day (a weekly or monthly setting may be 7 or 31 times more):
    # no server's moderators can give one member more than MAX_MEMBER_CREDITS_PER_DAY, no server
    # may spend more than MAX_SERVER_CREDITS_PER_DAY, and the whole bot stops at BOT_DAILY_BUDGET.
    # Every server spends the operator's EvoLink money, so none of them is unlimited by default.
    max_member_credits_per_day: Credits = Decimal(200)
    max_server_credits_per_day: Credits = Decimal(1000)
    bot_daily_budget: Credits = Decimal(2000)

    # Jobs: how many may be in flight at EvoLink at once, and when a job is given up.
    max_jobs_in_flight: int = Field(default=20, ge=1, le=1000)
    # Of those, how many one member may have at once; their other jobs wait their turn in line.
    max_jobs_in_flight_per_member: int = Field(default=2, ge=1, le=1000)
    # How long one EvoLink API call may take before it is given up.
    evolink_timeout_seconds: float = Field(default=30, ge=0.1, le=300)
    image_job_timeout_seconds: int = Field(default=600, ge=30)
    video_job_timeout_seconds: int = Field(default=1800, ge=60)
    # The largest result file the bot will download (a guard against a runaway response).
    max_result_bytes: int = Field(default=200 * 1024 * 1024, ge=1024 * 1024)
    # The largest picture /animate will download from Discord before checking it.
    max_input_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1024 * 1024)
    # Where members' pictures may be fetched from: Discord's CDN and media proxy (a test server
    # in tests). Comma-separated; nothing else is ever fetched for a member.
    discord_media_base_urls: Annotated[tuple[BaseUrl, ...], NoDecode] = DISCORD_MEDIA_BASE_URLS
    # Media work at once, across all guilds (which take turns when they must wait): downloads of
    # pictures and results, and picture decodes, image shrinking and ffmpeg runs.
    max_concurrent_downloads: int = Field(default=16, ge=1, le=1000)
    max_concurrent_media_processing: int = Field(default=2, ge=1, le=64)
    # ffmpeg re-encodes videos too large for Discord; a name on PATH or a full path.
    ffmpeg_path: str = "ffmpeg"

    # The bot's small web server: /healthz (Docker's HEALTHCHECK) and, with PUBLIC_BASE_URL, the
    # EvoLink callbacks. Port 0 lets the OS choose a free port (tests). Loopback by default: only
    # this machine (a reverse proxy, the healthcheck) reaches it; the Docker image sets 0.0.0.0,
    # since a published port arrives on the container's own interface.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # The public HTTPS address where EvoLink reaches that server (through a reverse proxy that
    # forwards to HTTP_PORT). Unset: no callbacks, jobs are polled.
    public_base_url: BaseUrl | None = None

    # Gateway shards: how many the bot has in all (SHARD_COUNT) and which of them this process runs
    # (SHARD_IDS, comma-separated, e.g. 0,1). Neither: one process runs every shard, as many as
    # Discord recommends. SHARD_COUNT alone: this process runs all of that many.
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[tuple[int, ...], NoDecode] = ()

    @property
    def prices(self) -> Prices:
        return Prices(
            image=self.image_credits,
            edited_image=self.edit_image_credits,
            video_per_second=self.video_credits_per_second,
            video_quality_factors={
                "480p": self.video_480p_multiplier,
                "720p": Decimal(1),
                "1080p": self.video_1080p_multiplier,
            },
        )

    @model_validator(mode="after")
    def _defaults_within_ceilings(self) -> Settings:
        if self.default_daily_credits > self.max_member_credits_per_day:
            raise ValueError(
                f"DEFAULT_DAILY_CREDITS ({self.default_daily_credits}) is over MAX_MEMBER_CREDITS_PER_DAY "
                f"({self.max_member_credits_per_day}): the default allowance must fit the ceiling")
        return self

    @model_validator(mode="after")
    def _shards_of_the_count(self) -> Settings:
        if not self.shard_ids:
            return self
        listed = ",".join(str(shard) for shard in self.shard_ids)
        if self.shard_count is None:
            raise ValueError(f"SHARD_IDS ({listed}) is set without SHARD_COUNT: set SHARD_COUNT to the "
                             "bot's number of shards in all processes together")
        outside = [shard for shard in self.shard_ids if not 0 <= shard < self.shard_count]
        if outside:
            raise ValueError(f"SHARD_IDS ({listed}) names shard {outside[0]}, but SHARD_COUNT is "
                             f"{self.shard_count}: shards are numbered 0 to {self.shard_count - 1}")
        repeated = sorted({shard for shard in self.shard_ids if self.shard_ids.count(shard) > 1})
        if repeated:
            raise ValueError(f"SHARD_IDS ({listed}) names shard {repeated[0]} twice: each shard once")
        return self

    @field_validator("public_base_url")
    @classmethod
    def _reachable_by_evolink(cls, value: str | None) -> str | None:
        if value is not None and not callback_base_acceptable(value):
            raise ValueError("not a public https:// URL")
        return value

    @field_validator("discord_media_base_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _split_shard_ids(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdecimal() for part in parts):
            raise ValueError("not shard numbers")
        return tuple(int(part) for part in parts)

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is None else _postgresql_url(value)

    @property
    def database(self) -> str | Path:
        """What Database.open takes: the PostgreSQL URL when DATABASE_URL is set, else the SQLite file."""
        return self.database_url.get_secret_value() if self.database_url is not None else self.database_path

    @property
    def secrets(self) -> list[str]:
        """What the log must never show: the tokens, the key, and the database's password."""
        secrets = [self.discord_token.get_secret_value(), self.evolink_api_key.get_secret_value()]
        if self.database_url is not None:
            secrets += postgresql_secrets(self.database_url.get_secret_value())
        return secrets

    @property
    def database_shown(self) -> str:
        """The database, for logs and replies: the SQLite path, or the PostgreSQL host and name
        (never the password)."""
        if self.database_url is None:
            return str(self.database_path)
        return postgresql_shown(self.database_url.get_secret_value())

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def _postgresql_url(value: SecretStr) -> SecretStr:
    if not is_postgresql_url(value.get_secret_value()):
        raise ValueError("not a postgresql:// URL")
    return value


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def callback_base_acceptable(url: str) -> bool:
    """EvoLink only calls back to public HTTPS addresses. Plain http is let through for a loopback
    host so the bot can be tried locally; a private IP literal could never be reached by EvoLink,
    and a query or fragment would break the paths appended to it."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.query or parts.fragment or not host:
        return False
    if host in _LOOPBACK_HOSTS:
        return parts.scheme in ("http", "https")
    if parts.scheme != "https":
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a host name: only DNS knows where it points
    return address.is_global


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line, fit to print and exit."""


_EXPECTATIONS = {
    "discord_token": "expected the bot token from the Discord developer portal",
    "evolink_api_key": "expected an EvoLink API key from the EvoLink dashboard",
    "log_level": "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    "public_base_url": "expected a public https:// URL where EvoLink can reach this bot's web server "
                       "(e.g. https://bot.example.org; http:// only for 127.0.0.1, ::1 or localhost)",
    "http_port": "expected a port number from 0 to 65535 (0: any free port)",
    "shard_count": "expected the bot's number of gateway shards in all, 1 or more",
    "shard_ids": "expected the shard numbers this process runs, separated by commas (e.g. 0,1)",
    "database_url": "expected postgresql://user:password@host:port/name",
    "lease_seconds": "expected a number of seconds from 1 to 3600",
}


def load_settings(env_file: str | os.PathLike[str] | None = ".env", **overrides: Any) -> Settings:
    """Read the settings, or raise ConfigError naming the first bad variable and what it expects."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


class _WebServerAddress(BaseSettings):
    """Only where the web server listens: what `python -m bot healthcheck` needs, read the same
    way as the bot reads it, without asking for the secrets it has no use for."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True, hide_input_in_errors=True)

    http_host: str = Settings.model_fields["http_host"].default
    http_port: int = Field(default=Settings.model_fields["http_port"].default, ge=0, le=65535)


def load_web_server_address(env_file: str | os.PathLike[str] | None = ".env") -> tuple[str, int]:
    """(HTTP_HOST, HTTP_PORT) as the bot would read them, or ConfigError."""
    try:
        address = _WebServerAddress(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    return address.http_host, address.http_port


def postgresql_shown(url: str) -> str:
    """A PostgreSQL URL as logs and messages show it: host, port and database, never the password."""
    parts = urlsplit(url)
    return f"PostgreSQL {parts.hostname}:{parts.port or 5432}{parts.path}"


def postgresql_secrets(url: str) -> list[str]:
    """What no output may show of a PostgreSQL URL: the URL itself and its password, as written
    and decoded (a password with `@` or `/` is written percent-encoded in the URL)."""
    password = urlsplit(url).password
    return [url, *([password, unquote(password)] if password else [])]


class _CopyDatabases(BaseSettings):
    """Only the two databases: what `python -m bot copy-database` needs, read the same way as the
    bot reads them, without asking for the token and key it has no use for. The PostgreSQL URL
    is required here (it is where the copy goes)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True, hide_input_in_errors=True)

    database_path: Path = Settings.model_fields["database_path"].default
    database_url: Annotated[SecretStr, AfterValidator(_postgresql_url)]


def load_copy_databases(env_file: str | os.PathLike[str] | None = ".env") -> tuple[Path, SecretStr]:
    """(DATABASE_PATH, DATABASE_URL) as the bot would read them, or ConfigError naming the
    variable (DATABASE_URL must be set)."""
    try:
        databases = _CopyDatabases(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    return databases.database_path, databases.database_url


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    if not error["loc"]:
        # A rule across settings (a model validator): its message names the variables. Its input
        # is every setting, secrets included, so it is never shown.
        return str(error["msg"]).removeprefix("Value error, ") + "."
    field = str(error["loc"][0])
    variable = field.upper()
    if error["type"] == "missing":
        return f"{variable} is not set: {_EXPECTATIONS.get(field, 'a value is required')}."
    rule = _EXPECTATIONS.get(field) or error["msg"][0].lower() + error["msg"][1:]
    # Secrets are never echoed; other values are, so the operator sees what was read.
    shown = "" if field in _SECRET_FIELDS else f" {error.get('input')!r}"
    return f"{variable}{shown} is malformed: {rule}."


_SECRET_FIELDS = {"discord_token", "evolink_api_key", "database_url"}
