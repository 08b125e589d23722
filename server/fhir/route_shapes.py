"""A router that remembers which route each shape of path goes to.

Why: Starlette's router tries its routes in order, one regular expression each, and a read
(`GET /Patient/{id}`) is near the end of the FHIR table: about two dozen matches before
the one that answers, on every request (about 60 µs of a cached read's 450). Which route a path reaches depends only on its
*shape*: the segments that are literals somewhere in the table (`_search`, `_history`,
`metadata`, `pas`...), the segments that begin with `$` (operations) and the number of
segments; any other segment matches a `{param}` alike. So the first request of each shape
and method walks the table as Starlette does, and the route it finds is kept for that
shape; later requests of the shape match that one route only.

The shortcut is taken only when every route's path is made of whole-segment literals,
`{param}` segments and `${param}` segments (true of the FHIR table; anything else turns it
off), and only for the route that fully matched (a 405 or a 404 always walks the table). It
is learnt once per shape, bounded in number, so no client can grow it.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute, Match, Mount, Route, Router, get_route_path
from starlette.types import Receive, Scope, Send

# Shapes remembered at most; past this, new shapes walk the table every time.
MAX_SHAPES = 512
# Paths with more segments than this always walk the table (FHIR paths have at most five).
MAX_SEGMENTS = 6
_PARAM = re.compile(r"\{[^{}/]+\}")
_OPERATION_PARAM = re.compile(r"\$\{[^{}/]+\}")
_WILDCARD, _OPERATION = "\0*", "\0$"


def _literal_segments(routes: list[BaseRoute]) -> frozenset[str] | None:
    """Every literal segment of the table's paths, or None when a path has a segment the
    shape of a path cannot stand for (a partial parameter such as `v{n}`, a converter)."""
    literals: set[str] = set()
    for route in routes:
        if isinstance(route, Mount):
            path = route.path + "/{path}"  # a mount matches its prefix and anything below
        elif isinstance(route, Route):
            path = route.path
        else:
            return None
        for segment in path.split("/")[1:]:
            if _PARAM.fullmatch(segment) or _OPERATION_PARAM.fullmatch(segment):
                if ":" in segment and not segment.endswith(":path}"):
                    return None  # a typed converter (int, float...) matches less than any segment
                continue
            if "{" in segment or "}" in segment:
                return None
            literals.add(segment)
    return frozenset(literals)


class ShapeCachedRouter(Router):
    """Starlette's Router, with the first full match of each (method, path shape) kept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._literals = _literal_segments(self.routes)
        self._routes_of: dict[tuple[str, ...], BaseRoute | None] = {}

    def shape(self, scope: Scope) -> tuple[str, ...] | None:
        """(method, one class per segment) of an HTTP request, None when not cached."""
        if self._literals is None:
            return None
        segments = get_route_path(scope).split("/")
        if len(segments) > MAX_SEGMENTS + 1:
            return None
        literals = self._literals
        return (
            scope["method"],
            *(s if s in literals or s == "" else (_OPERATION if s[0] == "$" else _WILDCARD) for s in segments),
        )

    def route_for(self, scope: Scope) -> BaseRoute | None:
        """The route Starlette's walk would hand this request to with a full match, or None
        for a partial match (405), no match (404) or a shape not cached."""
        key = self.shape(scope)
        if key is None:
            return None
        try:
            return self._routes_of[key]
        except KeyError:
            route = self._first_full_match(scope)
            if len(self._routes_of) < MAX_SHAPES:
                self._routes_of[key] = route
            return route

    def _first_full_match(self, scope: Scope) -> BaseRoute | None:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:  # as Starlette: the first full match wins, past any partial one
                return route
        return None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.route_for(scope)
            if route is not None:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:  # always, for a shape learnt from a full match
                    scope.setdefault("router", self)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await super().app(scope, receive, send)
