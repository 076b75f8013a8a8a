"""Who may use the web door, and how much: bearer-token authentication, add-on ingress trust, a same-origin check on
requests that change anything, per-client rate limits, and security headers on every answer.

* ``/`` (the page, which holds no data) and ``GET api/health`` (health checks, discovery) are open.
* Every other ``api/`` request needs ``Authorization: Bearer <token>`` (``voiceclone token`` shows it), unless it
  comes from the add-on's ingress proxy (``web.ingress_proxy``: the Supervisor, which only forwards requests Home
  Assistant authenticated) or ``web.auth`` is off.
* A browser request that changes something (POST, PUT, PATCH, DELETE) must come from the server's own origin (or one
  of ``web.allowed_origins``): a page elsewhere cannot enroll, replace or delete voices through a family member's
  browser, even through ingress, where Home Assistant's cookie would otherwise go along.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import defaultdict, deque
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from voiceclone_core.config import WebSettings
from voiceclone_core.service import ApiToken

OPEN_PATHS = {("GET", "/"), ("GET", "/api/health"), ("HEAD", "/"), ("HEAD", "/api/health")}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# The page's inline script and style; audio previews are blob: URLs; the page may be framed only by its own origin
# (Home Assistant's ingress panel is the same origin as the proxied page).
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def json_error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    """The web door's one error answer: ``{"error", "code", ...extra}`` with ``status``."""
    return web.json_response({"error": message, "code": code, **extra}, status=status, headers=headers)


class RateLimiter:
    """At most ``limit`` events per ``window_s`` seconds per key (a sliding window)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, key: str, now: float | None = None) -> float:
        """0 and counts the event when it is allowed; else the seconds until it would be."""
        now = time.monotonic() if now is None else now
        events = self._events[key]
        while events and now - events[0] >= self.window_s:
            events.popleft()
        if len(events) >= self.limit:
            return self.window_s - (now - events[0])
        events.append(now)
        if len(self._events) > 4096:  # forget idle clients so the table stays small
            for stale in [k for k, v in self._events.items() if not v or now - v[-1] >= self.window_s]:
                del self._events[stale]
        return 0.0


class Guard:
    """The web door's policy for one server (see the module's docstring)."""

    def __init__(self, settings: WebSettings, token: ApiToken) -> None:
        self.settings = settings
        self.token = token
        self.ingress = ipaddress.ip_address(settings.ingress_proxy) if settings.ingress_proxy else None
        self.limits = {
            ("POST", "/api/voices"): RateLimiter(settings.enrollments_per_hour, 3600.0),
            ("POST", "/api/check"): RateLimiter(settings.enrollments_per_hour, 3600.0),
            ("POST", "/api/detect"): RateLimiter(settings.previews_per_minute, 60.0),
            ("POST", "preview"): RateLimiter(settings.previews_per_minute, 60.0),
        }

    def from_ingress(self, request: web.Request) -> bool:
        if self.ingress is None or request.remote is None:
            return False
        try:
            return ipaddress.ip_address(request.remote) == self.ingress
        except ValueError:
            return False

    def client(self, request: web.Request) -> str:
        """The address a limit applies to: through ingress, the browser's as Home Assistant saw it — the entry before
        the one the Supervisor appends (Home Assistant's own); earlier entries are whatever the browser claimed."""
        if self.from_ingress(request):
            chain = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
            return chain[-2] if len(chain) >= 2 else (chain[0] if chain else str(request.remote))
        return str(request.remote)

    def authenticated(self, request: web.Request) -> bool:
        if not self.settings.auth or self.from_ingress(request):
            return True
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(presented) and self.token.matches(presented.strip())

    def same_origin(self, request: web.Request) -> bool:
        """A browser names the page's origin on cross-site and same-site requests alike; it must be ours."""
        origin = request.headers.get("Origin")
        if origin is None:  # not a browser's request (or a very old one): the token decides
            return True
        if origin in self.settings.allowed_origins:
            return True
        parts = urlsplit(origin)
        hosts = {request.host}
        if self.from_ingress(request):  # the browser talks to Home Assistant, which the proxy names
            hosts |= {h.strip() for h in request.headers.get("X-Forwarded-Host", "").split(",") if h.strip()}
        return parts.scheme in ("http", "https") and parts.netloc in hosts

    def limit_key(self, request: web.Request) -> tuple[str, str] | None:
        if request.method == "POST" and request.path.startswith("/api/voices/") and request.path.endswith("/preview"):
            return ("POST", "preview")
        key = (request.method, request.path)
        return key if key in self.limits else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await self._checked(request, handler)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _checked(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (request.method, request.path) in OPEN_PATHS or not request.path.startswith("/api/"):
            return await handler(request)
        if request.method in UNSAFE_METHODS and not self.same_origin(request):
            return json_error(403, "requests from another site may not change voices", "forbidden_origin")
        if not self.authenticated(request):
            return json_error(
                401,
                "this API needs the server's token: Authorization: Bearer <token> (voiceclone token shows it)",
                "unauthorized",
                {"WWW-Authenticate": 'Bearer realm="voiceclone"'},
            )
        key = self.limit_key(request)
        if key is not None:
            wait = self.limits[key].retry_after(self.client(request))
            if wait > 0:
                return json_error(
                    429,
                    f"too many requests: try again in {math.ceil(wait)} s",
                    "rate_limited",
                    {"Retry-After": str(math.ceil(wait))},
                )
        return await handler(request)
