"""`Cache-Control: no-store` and `Vary: Authorization` on every private answer (pure ASGI).

Reads, searches, PAS records and errors name patients; without these headers a shared
proxy or a browser cache may keep them, and show one caller's answer to another. Set in
one place so no handler, error path or sub-application (/pas/v1) can forget them. Only
the public discovery documents and the health check stay cacheable. A `Vary` the app
already set (gzip's `Accept-Encoding`, CORS's `Origin`) is kept and merged.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/metadata", "/.well-known/smart-configuration", "/openapi.json", "/_health"})


def merged_vary(existing: list[str], name: str) -> str:
    """One Vary value: the existing field names (every Vary header) plus `name`, once."""
    names = [n.strip() for value in existing for n in value.split(",") if n.strip()]
    if not any(n.lower() == name.lower() for n in names):
        names.append(name)
    return ", ".join(names)


def with_vary(raw: list[tuple[bytes, bytes]], name: str, drop: bytes | None = None) -> list[tuple[bytes, bytes]]:
    """`raw` with `name` merged into its Vary headers (now one, last), and the header `drop`
    (lower case) left out; one pass over the raw pairs, as this runs on every answer."""
    kept: list[tuple[bytes, bytes]] = []
    vary: list[str] = []
    for key, value in raw:
        lowered = key.lower()
        if lowered == b"vary":
            vary.append(value.decode("latin-1"))
        elif lowered != drop:
            kept.append((key, value))
    kept.append((b"vary", merged_vary(vary, name).encode("latin-1")))
    return kept


def private_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`raw` with Cache-Control replaced by no-store and Authorization merged into Vary."""
    headers = with_vary(raw, "Authorization", drop=b"cache-control")
    headers.append((b"cache-control", b"no-store"))
    return headers


def is_public(scope: Scope) -> bool:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path in PUBLIC_PATHS


class NoStoreMiddleware:
    """Mark every response but the public documents as private and uncacheable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope):
            await self.app(scope, receive, send)
            return

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": private_headers(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_private)
