"""CORS for the blueprint's routes: the header logic alone, no Flask import.

Modelled on flask-cors's split (``core.py`` vs ``extension.py``): this module
decides which headers an answer gets from the request's ``Origin`` and, for a
preflight, its ``Access-Control-Request-*`` headers; :mod:`flask_ai_sse.guards`
puts them on Flask responses. Off unless ``AI_SSE_CORS_ORIGINS`` is set.

Rules kept here, so that no config can break them:

* an origin is echoed only when allowed; ``*`` is sent only without credentials
  (a config asking for both is refused with :class:`ConfigurationError`);
* ``Vary: Origin`` on every answer the policy looked at, so caches keep
  answers for different origins apart;
* ``Last-Event-ID`` is always an allowed request header (``EventSource``
  reconnects, and ``fetch``-based clients resume, with it);
* a preflight that asks for a method or header not allowed gets no
  ``Access-Control-Allow-*`` header at all, and the browser stops there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

__all__ = ["ANY", "CorsPolicy"]

#: The wildcard origin (or request header).
ANY = "*"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+")
_VARY_ACTUAL = ("Origin",)
_VARY_PREFLIGHT = ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
Headers = dict[str, str]
Origin = str | re.Pattern[str]


def _names(key: str, value: Any, *, allow_any: bool = False) -> tuple[str, ...]:
    """A list of header or method names from config: a comma-separated string or a list."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    out: list[str] = []
    for item in items:
        name = item.strip() if isinstance(item, str) else item
        if name == ANY and allow_any:
            out.append(name)
        elif not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigurationError(f"{key} has an invalid name: {item!r}.")
        elif name.lower() not in (n.lower() for n in out):
            out.append(name)
    return tuple(out)


def _origins(key: str, value: Any) -> tuple[Origin, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[Origin] = []
    for item in items:
        origin = item.strip() if isinstance(item, str) else item
        if isinstance(origin, re.Pattern) or origin == ANY:
            out.append(origin)
        elif isinstance(origin, str) and origin.lower() == "null":
            # Sandboxed iframes and file:// pages all send "null": allowing it allows them all.
            raise ConfigurationError(f"{key} must not allow the 'null' origin.")
        elif isinstance(origin, str) and _ORIGIN.fullmatch(origin):
            out.append(origin.lower())
        else:
            raise ConfigurationError(
                f"{key} has {item!r}, which is not an origin like 'https://example.com'"
                " (scheme, host and optional port; no path, no trailing slash)."
            )
    return tuple(out)


@dataclass(frozen=True)
class CorsPolicy:
    """Which cross-origin requests the routes accept. Build it with :meth:`from_config`."""

    origins: tuple[Origin, ...]
    methods: tuple[str, ...] = ("GET", "POST")
    headers: tuple[str, ...] = ("Content-Type", "Last-Event-ID")
    expose_headers: tuple[str, ...] = ("Retry-After",)
    credentials: bool = False
    max_age: int | None = 600

    @classmethod
    def from_config(
        cls,
        origins: Any,
        *,
        methods: Any = ("GET", "POST"),
        headers: Any = ("Content-Type",),
        expose_headers: Any = ("Retry-After",),
        credentials: Any = False,
        max_age: Any = 600,
    ) -> CorsPolicy | None:
        """The policy of the ``AI_SSE_CORS_*`` keys, or ``None`` when CORS is off.

        ``origins`` is ``"*"``, exact origins (a list or a comma-separated
        string), or compiled regular expressions that must match a whole origin.
        """
        if not origins:
            return None
        allowed = _origins("AI_SSE_CORS_ORIGINS", origins)
        if not isinstance(credentials, bool):
            raise ConfigurationError("AI_SSE_CORS_CREDENTIALS must be True or False.")
        if credentials and ANY in allowed:
            raise ConfigurationError(
                "AI_SSE_CORS_ORIGINS='*' with AI_SSE_CORS_CREDENTIALS=True would let any site"
                " use your users' sessions (and browsers refuse it): list the origins."
            )
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0
        ):
            raise ConfigurationError("AI_SSE_CORS_MAX_AGE must be a non-negative int or None.")
        allowed_headers = _names("AI_SSE_CORS_HEADERS", headers, allow_any=True)
        if "last-event-id" not in (h.lower() for h in allowed_headers):
            allowed_headers += ("Last-Event-ID",)
        return cls(
            origins=allowed,
            methods=tuple(m.upper() for m in _names("AI_SSE_CORS_METHODS", methods)),
            headers=allowed_headers,
            expose_headers=_names("AI_SSE_CORS_EXPOSE_HEADERS", expose_headers),
            credentials=credentials,
            max_age=max_age,
        )

    def allow_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or ``None``: refused."""
        if not origin:
            return None
        lowered = origin.lower()
        for allowed in self.origins:
            if allowed == ANY:
                return ANY
            if isinstance(allowed, re.Pattern):
                if allowed.fullmatch(origin):
                    return origin
            elif allowed == lowered:
                return origin
        return None

    def _base(self, origin: str | None) -> Headers | None:
        allowed = self.allow_origin(origin)
        if allowed is None:
            return None
        headers = {"Access-Control-Allow-Origin": allowed}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def actual_headers(self, origin: str | None) -> tuple[Headers, tuple[str, ...]]:
        """Headers for a (non-preflight) answer, and the ``Vary`` names to add."""
        headers = self._base(origin)
        if headers is None:
            return {}, _VARY_ACTUAL
        if self.expose_headers:
            headers["Access-Control-Expose-Headers"] = ", ".join(self.expose_headers)
        return headers, _VARY_ACTUAL

    def preflight_headers(
        self, origin: str | None, method: str, request_headers: str | None
    ) -> tuple[Headers, tuple[str, ...]]:
        """Headers for an ``OPTIONS`` preflight asking for ``method`` and ``request_headers``."""
        headers = self._base(origin)
        if headers is None or method not in self.methods:
            return {}, _VARY_PREFLIGHT
        asked = [h.strip() for h in (request_headers or "").split(",") if h.strip()]
        if ANY in self.headers:
            if not all(_TOKEN.fullmatch(h) for h in asked):
                return {}, _VARY_PREFLIGHT
            allow = asked
        else:
            allowed = {h.lower() for h in self.headers}
            if any(h.lower() not in allowed for h in asked):
                return {}, _VARY_PREFLIGHT
            allow = list(self.headers)
        headers["Access-Control-Allow-Methods"] = ", ".join(self.methods)
        if allow:
            headers["Access-Control-Allow-Headers"] = ", ".join(allow)
        if self.max_age is not None:
            headers["Access-Control-Max-Age"] = str(self.max_age)
        return headers, _VARY_PREFLIGHT

    def headers_for(
        self, method: str, header: Callable[[str], str | None]
    ) -> tuple[Headers, tuple[str, ...]]:
        """Dispatch on the request (``header`` looks up its headers): preflight or actual."""
        origin = header("Origin")
        asked_method = header("Access-Control-Request-Method")
        if method == "OPTIONS" and asked_method is not None:
            return self.preflight_headers(
                origin, asked_method, header("Access-Control-Request-Headers")
            )
        return self.actual_headers(origin)
