"""The shape-cached router hands every request to the route Starlette's ordered walk would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Match, Mount, Route

from server.fhir.route_shapes import MAX_SHAPES, ShapeCachedRouter, _literal_segments
from server.fhir.routes import ROUTES


async def _endpoint(request):  # pragma: no cover - never called: only matched
    raise AssertionError


TABLE = [Mount("/pas", routes=[Route("/v1/patients", _endpoint)]), *ROUTES]
SEGMENTS = st.sampled_from(
    ["", "Patient", "Observation", "AllergyIntolerance", "_search", "_history", "$everything", "$meta", "$",
     "metadata", "_health", "live", "ready", "pas", "v1", "9000000009", "1", ".well-known",
     "smart-configuration", "openapi.json", "metrics", "x y", "%2F", "Patient$"]
)  # fmt: skip
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def _walk(routes, scope) -> object:
    """Starlette's own choice: the first full match, in order."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


@settings(max_examples=600)
@given(st.lists(st.tuples(METHODS, st.lists(SEGMENTS, min_size=1, max_size=6)), min_size=1, max_size=8))
def test_every_path_reaches_the_route_the_ordered_walk_picks(requests):
    router = ShapeCachedRouter(TABLE)
    for method, segments in requests:  # several per router, so shapes learnt earlier are reused
        scope = _scope(method, "/" + "/".join(segments))
        assert router.route_for(scope) is _walk(TABLE, scope)


def test_a_read_and_its_siblings_of_the_same_shape_share_the_learnt_route():
    router = ShapeCachedRouter(TABLE)
    first = router.route_for(_scope("GET", "/Patient/9000000009"))
    assert first is not None and first.path == "/{type}/{id}"
    assert router.route_for(_scope("GET", "/MedicationRequest/abc")) is first
    assert router.route_for(_scope("GET", "/Patient/_search")).path == "/{type}/_search"  # a literal: its own shape
    assert router.route_for(_scope("GET", "/Patient/1/$everything")).path == "/Patient/{id}/$everything"
    assert router.route_for(_scope("GET", "/Observation/1/$everything")).path == "/{type}/{id}/${operation}"


def test_operation_segments_are_not_reads():
    router = ShapeCachedRouter(TABLE)
    assert router.route_for(_scope("GET", "/Patient/$validate")).path == "/{type}/${operation}"
    assert router.route_for(_scope("GET", "/Patient/9000000009")).path == "/{type}/{id}"


def test_the_number_of_learnt_shapes_is_bounded():
    router = ShapeCachedRouter(TABLE)
    for n in range(MAX_SHAPES + 50):
        router.route_for(_scope("GET", "/x" * (n % 6 + 1) + "/" * (n // 6)))
    assert len(router._routes_of) <= MAX_SHAPES


def test_a_table_with_a_segment_a_shape_cannot_stand_for_is_never_shortcut():
    assert _literal_segments([Route("/v{version}/x", _endpoint)]) is None
    assert _literal_segments([Route("/items/{n:int}", _endpoint)]) is None
    router = ShapeCachedRouter([Route("/items/{n:int}", _endpoint), Route("/items/{name}", _endpoint)])
    assert router.shape(_scope("GET", "/items/12")) is None
    assert router.route_for(_scope("GET", "/items/12")) is None  # no shortcut: it walks the table as Router does
    assert not router._routes_of
