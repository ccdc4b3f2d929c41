"""Faults a test injects into the fake Discord: answers replaced (``fail_next``), withheld
(``hold``) or never sent (``drop_next``), expired tokens and attachments, permissions taken
from the bot (``deny_permissions``) and users who refuse DMs (``refuse_dms``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

# A response the fake withholds until the test calls release(): the same hold the fake EvoLink uses.
from bot.evolink.fake import FakeHold as Hold
from tests.fakes.discord.base import FakeDiscordBase
from tests.fakes.discord.models import RecordedRequest
from tests.fakes.discord.wire import _json

# Channel permissions deny_permissions() can take away from the bot.
_CHANNEL_PERMISSIONS = ("VIEW_CHANNEL", "SEND_MESSAGES", "ATTACH_FILES")


@dataclass
class _FailRule:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict | None
    headers: dict[str, str | None]
    times: int
    only_uploads: bool = False


@dataclass
class _HoldRule:
    method: str
    pattern: re.Pattern[str]
    only_uploads: bool
    hold: Hold


@dataclass
class _DropRule:
    """Close the connection instead of answering, before or after applying the request."""

    method: str
    pattern: re.Pattern[str]
    after_applying: bool


class Faults(FakeDiscordBase):
    """The test controls that make the fake fail, and how the middleware picks the rule that applies."""

    # Set up by FakeDiscord.__init__ (server.py).
    _fail_rules: list[_FailRule]
    _hold_rules: list[_HoldRule]
    _drop_rules: list[_DropRule]
    _holds: list[Hold]
    _denied: dict[int, set[str]]
    _refused_dms: set[int]

    def expire_token(self, token: str) -> None:
        """Make every later token route for this interaction answer 401 / 50027."""
        self._by_token[token].expired = True

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: dict | None,
        headers: dict[str, str | None] | None = None,
        times: int = 1,
        only_uploads: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``/``body``.

        ``only_uploads`` restricts the rule to requests that carry files (e.g. a 413 that only
        an upload can provoke, not the text edits before it).

        ``path_regex`` is searched (re.search) in the path without /api/v10. ``body=None``
        answers with a non-JSON text body (like a proxy would), except for 429 where it
        means a default ``{"retry_after": 0.05, ...}``. 429s get ``Via: 1.1 google`` added,
        without which discord.py treats a 429 as a Cloudflare ban; pass
        ``headers={"Via": None}`` to simulate exactly that.
        """
        merged: dict[str, str | None] = {}
        if status == 429:
            merged["Via"] = "1.1 google"
            if body is None:
                body = {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
        merged.update(headers or {})
        self._fail_rules.append(
            _FailRule(method.upper(), re.compile(path_regex), status, body, merged, times, only_uploads)
        )

    def hold(self, method: str, path_regex: str, *, only_uploads: bool = False) -> Hold:
        """Apply the next matching request normally, then withhold its answer until ``release()``.

        Matches like ``fail_next`` (and a request ``fail_next`` answers is not held). The
        effect is in the fake's state (e.g. the edit and its attachments) before
        ``hold.arrived`` is set: like a bot killed after Discord applied a request but before
        the bot saw the answer. A client that gives up meanwhile is harmless.
        """
        hold = Hold()
        self._hold_rules.append(_HoldRule(method.upper(), re.compile(path_regex), only_uploads, hold))
        self._holds.append(hold)
        return hold

    def drop_next(self, method: str, path_regex: str, *, after_applying: bool = False) -> None:
        """Close the connection of the next matching request without any answer: a network
        error for the client. With ``after_applying`` the request takes effect first (Discord got
        it, the client never heard back); otherwise it has none. Matches like ``fail_next``."""
        self._drop_rules.append(_DropRule(method.upper(), re.compile(path_regex), after_applying))

    def deny_permissions(self, channel_id: int, *permissions: str) -> None:
        """Take permissions in a channel from the bot, for its bot-token channel routes.

        ``permissions`` among VIEW_CHANNEL, SEND_MESSAGES, ATTACH_FILES. Answers as Discord:
        no VIEW_CHANNEL: 403 50001 on any route of the channel; no SEND_MESSAGES: 403 50013 on
        sends; no ATTACH_FILES: 403 50013 on sends and edits carrying new files. Interaction
        token routes are not affected, and the gateway's view (``permissions_for``) is not updated.
        """
        self._denied.setdefault(channel_id, set()).update(_permission_names(permissions))

    def allow_permissions(self, channel_id: int, *permissions: str) -> None:
        """Give back permissions taken by ``deny_permissions``."""
        self._denied.get(channel_id, set()).difference_update(_permission_names(permissions))

    def refuse_dms(self, user_id: int) -> None:
        """The user blocks DMs from the bot: sends to their DM channel get 403 50007 (the
        channel itself can still be opened, as on Discord)."""
        self._refused_dms.add(user_id)

    def expire_attachment(self, attachment_id: int) -> None:
        """Its CDN URL answers 404 from now on (signed URLs expire after some hours)."""
        self._blobs.pop(attachment_id, None)

    # ------------------------------------------------------------ applied by the middleware

    def _take_fail_rule(self, rec: RecordedRequest) -> _FailRule | None:
        for rule in self._fail_rules:
            if _rule_matches(rule.method, rule.pattern, rule.only_uploads, rec):
                rule.times -= 1
                if rule.times <= 0:
                    self._fail_rules.remove(rule)
                return rule
        return None

    def _take_drop_rule(self, rec: RecordedRequest) -> _DropRule | None:
        for rule in self._drop_rules:
            if _rule_matches(rule.method, rule.pattern, False, rec):
                self._drop_rules.remove(rule)
                return rule
        return None

    @staticmethod
    def _drop_connection(request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        rec.injected = True
        rec.status = 0  # no answer at all
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("dropped by the fake")

    def _take_hold(self, rec: RecordedRequest) -> Hold | None:
        for rule in self._hold_rules:
            if _rule_matches(rule.method, rule.pattern, rule.only_uploads, rec):
                self._hold_rules.remove(rule)
                return rule.hold
        return None

    @staticmethod
    def _injected_response(rule: _FailRule) -> web.Response:
        headers = {k: v for k, v in rule.headers.items() if v is not None}
        if rule.body is None:
            return web.Response(status=rule.status, text=f"<html>{rule.status}</html>", headers=headers)
        return _json(rule.status, rule.body, headers)


def _rule_matches(method: str, pattern: re.Pattern[str], only_uploads: bool, rec: RecordedRequest) -> bool:
    """How fail_next and hold pick requests: method, re.search in the path, files if asked."""
    if only_uploads and not rec.files:
        return False
    return method == rec.method and pattern.search(rec.path) is not None


def _permission_names(permissions: tuple[str, ...]) -> set[str]:
    unknown = set(permissions) - set(_CHANNEL_PERMISSIONS)
    if unknown:
        raise ValueError(f"unknown permissions {sorted(unknown)}; use {', '.join(_CHANNEL_PERMISSIONS)}")
    return set(permissions)
