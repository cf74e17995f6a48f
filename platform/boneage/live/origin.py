"""The websocket origin check: scheme, host and port of the Origin header must be the socket's own origin or
one of settings.CSRF_TRUSTED_ORIGINS (the same rule Django's CSRF check applies to forms).

channels' AllowedHostsOriginValidator compares the host only, so `http://localhost:9999` or
`https://127.0.0.1` passed for a page served at http://127.0.0.1:8000.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalized_origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as `https://example.org`; None when it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def own_origin(scope) -> tuple[str, str, int] | None:
    """The origin a page that opened this socket would have: the Host header with the socket's scheme."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    secure = scope.get("scheme") == "wss"
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:  # behind a TLS proxy (production): the proxy says which scheme the browser used
        name, value = proxy
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        secure = secure or headers.get(header, b"").decode("latin-1") == value
    return normalized_origin(f"{'https' if secure else 'http'}://{host}") if host else None


def origin_allowed(scope) -> bool:
    origin = dict(scope.get("headers") or []).get(b"origin")
    if origin is None:
        return False
    parsed = normalized_origin(origin.decode("latin-1"))
    if parsed is None:
        return False
    trusted = {normalized_origin(value) for value in settings.CSRF_TRUSTED_ORIGINS}
    return parsed == own_origin(scope) or parsed in trusted


class SameOriginValidator:
    """ASGI middleware: a websocket whose Origin fails `origin_allowed` is refused before the handshake."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
