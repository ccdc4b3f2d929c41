"""Settings fail with one clear line; no secret survives into a log record."""

import io
import logging
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings, load_web_server_address
from bot.logging_setup import REDACTED, RedactingFormatter, SecretRedactor

REPO = Path(__file__).resolve().parents[2]


def test_missing_token_names_the_variable():
    with pytest.raises(ConfigError, match="^DISCORD_TOKEN is not set: expected the bot token"):
        load_settings(None, evolink_api_key="k")


def test_malformed_values_name_the_variable_the_value_and_the_rule():
    with pytest.raises(ConfigError) as bad:
        load_settings(None, discord_token="t", evolink_api_key="k", image_credits="two")
    assert str(bad.value) == "IMAGE_CREDITS 'two' is malformed: input should be a valid decimal."
    with pytest.raises(ConfigError, match="^EVOLINK_BASE_URL 'nope' is malformed"):
        load_settings(None, discord_token="t", evolink_api_key="k", evolink_base_url="nope")


def test_defaults_and_secret_values_are_hidden():
    settings = load_settings(None, discord_token="tok-123", evolink_api_key="key-456")
    assert settings.database_path == Path("data/bot.db")
    assert settings.evolink_base_url == "https://api.evolink.ai"
    assert settings.discord_api_base_url == "https://discord.com/api/v10"
    assert "tok-123" not in repr(settings) and "key-456" not in repr(settings)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISCORD_TOKEN", "EVOLINK_API_KEY")}
    return env


def test_python_m_bot_without_a_token_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env={**_clean_env(), "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: DISCORD_TOKEN is not set: expected the bot token from the Discord developer portal."
    ]


def test_a_malformed_secret_is_never_echoed(tmp_path):
    env = {**_clean_env(), "PYTHONPATH": str(REPO), "DISCORD_TOKEN": "ok",
           "EVOLINK_API_KEY": "sk-very-secret", "MAX_JOBS_IN_FLIGHT": "lots"}
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "MAX_JOBS_IN_FLIGHT 'lots' is malformed" in result.stderr
    assert "sk-very-secret" not in result.stderr


def test_redaction_covers_known_secrets_and_token_shapes():
    redactor = SecretRedactor(["bot-token-abc", "evo-key-xyz"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(redactor, "%(message)s"))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("PATCH https://discord.com/api/v10/webhooks/123/aW50ZXJhY3Rpb24.abc-_/messages/@original")
        logger.warning("POST /interactions/987/itok_secret/callback")
        logger.warning("%s", {"t": "INTERACTION_CREATE", "d": {"token": "gateway-itok", "id": "1"}})
        logger.warning('{"token": "json-itok"}')
        logger.warning("Authorization: Bearer evo-key-xyz and Bot bot-token-abc")
        try:
            raise RuntimeError("failed with bot-token-abc inside")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    for secret in ("bot-token-abc", "evo-key-xyz", "aW50ZXJhY3Rpb24", "itok_secret",
                   "gateway-itok", "json-itok"):
        assert secret not in output
    assert output.count(REDACTED) >= 7
    assert "/webhooks/123/[redacted]/messages/@original" in output


# -- the web server's settings ----------------------------------------------------------------


def _with(**settings: object):
    return load_settings(None, discord_token="t", evolink_api_key="k", **settings)


def test_web_server_defaults_listen_on_loopback_8080_without_callbacks(monkeypatch):
    for name in ("HTTP_HOST", "HTTP_PORT", "PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = _with()
    assert (settings.http_host, settings.http_port, settings.public_base_url) == ("127.0.0.1", 8080, None)
    # `python -m bot healthcheck` reads the same default, so it asks where the bot listens.
    assert load_web_server_address(None) == ("127.0.0.1", 8080)


def _dockerfile_env() -> dict[str, str]:
    """The ENV instructions of the Dockerfile, continuation lines joined."""
    lines = (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    env: dict[str, str] = {}
    for line in lines:
        if line.startswith("ENV "):
            env.update(word.split("=", 1) for word in shlex.split(line[len("ENV "):]))
    return env


def _compose_environment(service: str) -> dict[str, str]:
    """The `environment:` mapping of one service in docker-compose.yml (no YAML library here: the
    file's own simple layout, `KEY: value` lines indented under `environment:`)."""
    lines = (REPO / "docker-compose.yml").read_text().splitlines()
    start = lines.index(f"  {service}:")
    found: dict[str, str] = {}
    block_indent = None
    for line in lines[start + 1:]:
        if line.strip().startswith("#") or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if block_indent is None:
            if line.strip() == "environment:":
                block_indent = indent
            elif indent <= 2:
                break
            continue
        if indent <= block_indent:
            break
        key, value = line.strip().split(":", 1)
        found[key] = value.strip().strip('"')
    return found


def test_the_docker_image_and_compose_file_listen_on_every_interface_of_the_container():
    # Inside a container, loopback is unreachable from a published port: both must say 0.0.0.0
    # themselves, now that the bot's own default is 127.0.0.1.
    assert _dockerfile_env()["HTTP_HOST"] == "0.0.0.0"
    assert _compose_environment("bot")["HTTP_HOST"] == "0.0.0.0"


@pytest.mark.parametrize(("given", "kept"), [
    ("https://bot.example.org", "https://bot.example.org"),
    ("https://bot.example.org/wan/", "https://bot.example.org/wan"),  # behind a proxy's path prefix
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),  # tried locally
    ("http://localhost:8080/", "http://localhost:8080"),
    ("http://[::1]:8080", "http://[::1]:8080"),
])
def test_public_base_url_accepts_https_and_local_http(given, kept):
    assert _with(public_base_url=given).public_base_url == kept


@pytest.mark.parametrize("refused", [
    "http://example.org",      # EvoLink calls back over HTTPS only
    "ftp://example.org",
    "https://192.168.1.20",    # private: EvoLink could never reach it
    "https://bot.example.org/?key=1",
    "bot.example.org",
])
def test_public_base_url_refuses_what_evolink_cannot_call(refused):
    with pytest.raises(ConfigError) as bad:
        _with(public_base_url=refused)
    assert str(bad.value).startswith(f"PUBLIC_BASE_URL {refused!r} is malformed: expected a public https:// URL")


def test_http_port_is_a_port_number():
    assert _with(http_port="0").http_port == 0
    with pytest.raises(ConfigError, match=r"^HTTP_PORT '65536' is malformed: expected a port number from 0 to 65535"):
        _with(http_port="65536")


def test_healthcheck_reads_the_port_without_needing_any_secret(tmp_path):
    # A closed port: the probe fails with one line, and never asks for DISCORD_TOKEN.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**_clean_env(), "PYTHONPATH": str(REPO), "HTTP_PORT": str(port), "HTTP_HOST": "127.0.0.1"}
    result = subprocess.run([sys.executable, "-m", "bot", "healthcheck"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout.startswith(f"unhealthy: no answer from http://127.0.0.1:{port}/healthz")
    assert "DISCORD_TOKEN" not in result.stdout + result.stderr


def test_database_url_selects_postgresql_and_its_password_stays_secret():
    settings = load_settings(None, discord_token="t", evolink_api_key="k",
                             database_url="postgresql://wan:pa55word@db.internal:6543/wanbot")
    assert settings.database == "postgresql://wan:pa55word@db.internal:6543/wanbot"
    assert settings.database_shown == "PostgreSQL db.internal:6543/wanbot"
    assert "pa55word" not in repr(settings)
    assert {"pa55word", "postgresql://wan:pa55word@db.internal:6543/wanbot"} <= set(settings.secrets)
    # Without it: the SQLite file, as before.
    plain = load_settings(None, discord_token="t", evolink_api_key="k")
    assert plain.database == Path("data/bot.db") and plain.database_shown == "data/bot.db"


def test_a_percent_encoded_database_password_is_redacted_as_written_and_decoded():
    # `@` and `/` in a password must be percent-encoded in the URL; a driver may quote it decoded.
    settings = load_settings(None, discord_token="t", evolink_api_key="k",
                             database_url="postgresql://wan:p%40ss%2Fw0rd@db.internal/wanbot")
    redactor = SecretRedactor(settings.secrets)
    line = redactor.redact("password p@ss/w0rd (p%40ss%2Fw0rd) refused for wan")
    assert "p@ss/w0rd" not in line and "p%40ss%2Fw0rd" not in line
    assert line.endswith("refused for wan")


def test_a_database_url_that_is_not_postgresql_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as bad:
        load_settings(None, discord_token="t", evolink_api_key="k",
                      database_url="mysql://root:hunter2@localhost/bot")
    assert "DATABASE_URL" in str(bad.value)
    assert "expected postgresql://user:password@host:port/name" in str(bad.value)
    assert "hunter2" not in str(bad.value)
