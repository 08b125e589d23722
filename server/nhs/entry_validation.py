"""Upstream answers checked once, where they enter the façade: the shape of a read's
answer, and R4 validation of converted data.

Upstream answers are converted to plain dicts on the request path; each converted
resource is parsed once with the fhir.resources R4B model here, so nothing the façade
emits from an NHS API can be invalid R4, and a bad upstream record is reported as the
upstream's fault (502) rather than served.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

import orjson
from pydantic import ValidationError

from server import request_trace
from server.nhs.errors import UpstreamBadResponse

# Besides ValidationError, fhir.resources' own type lookups raise these: a contained
# resource of an unknown resourceType is a KeyError, a non-string one a TypeError.
FHIR_MODEL_ERRORS = (ValueError, TypeError, KeyError)
# What converting dicts of the wrong shape raises: a number where a list was expected
# (TypeError), a string where an object was (AttributeError), a list used as a dict key
# (TypeError: unhashable), a missing key, a bad date string (ValueError), an empty list.
UPSTREAM_SHAPE_ERRORS = (TypeError, AttributeError, KeyError, ValueError, IndexError)


@contextmanager
def upstream_shape(api: str, what: str) -> Iterator[None]:
    """Around the conversion of one upstream answer (and nothing else): an answer of the
    right outline but with wrong value types (null, a number, a list where an object
    belongs) is the NHS API's fault, so it becomes UpstreamBadResponse (502), not a 500.

    Only the exception's type is kept: its text may quote upstream values (PHI). Keep the
    block to pure conversion code: wrapped around our own I/O or request handling, it
    would report our bugs as upstream faults.
    """
    try:
        yield
    except UPSTREAM_SHAPE_ERRORS as exc:
        raise UpstreamBadResponse(api, f"{what} has values of unexpected types ({type(exc).__name__})") from None


def expect_resource(body: Any, resource_type: str, api: str) -> dict[str, Any]:
    """`body` when it is one `resource_type` with an id; else UpstreamBadResponse (a read
    answered with anything else is the NHS API's fault: 502, never served)."""
    if not isinstance(body, dict) or body.get("resourceType") != resource_type or not body.get("id"):
        raise UpstreamBadResponse(api, f"expected a {resource_type} resource with an id")
    return body


@cache
def _r4_model(resource_type: str) -> Any:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def model_problems(model: Any, resource: Mapping[str, Any], max_problems: int = 5) -> list[str]:
    """Empty when `resource` validates against the fhir.resources `model`; otherwise the
    failing element paths (never values, nor pydantic's messages, which may quote them:
    these strings reach logs and OperationOutcomes)."""
    started = time.perf_counter()
    problems = _validation_problems(model, resource, max_problems)
    if request_trace.current() is not None:  # the console's trace: the validation's share of the time
        request_trace.record(
            "conversion",
            f"validated as R4 {model.__name__}" + (f": {len(problems)} problem(s)" if problems else ""),
            {"model": model.__name__, "problems": problems},
            duration=time.perf_counter() - started,
        )
    return problems


def _validation_problems(model: Any, resource: Mapping[str, Any], max_problems: int) -> list[str]:
    # The dominant CPU cost of a cache miss (about 0.35-0.6 ms for a full PDS Patient: 18
    # nested models, each through fhir_core's Python validators). Measured alternatives
    # are no cheaper: model_validate_json on the raw bytes is slower (fhir_core validates
    # every nested element from a dict either way), and Model(**resource) is the same.
    digest = _content_digest(model, resource)
    if digest is not None and digest in _VALID:
        _VALID.move_to_end(digest)
        return []  # these exact contents validated as this model before
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        paths = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        return [p or model.__name__ for p in paths[:max_problems]] or [f"{model.__name__}: invalid"]
    except FHIR_MODEL_ERRORS as exc:
        return [f"{model.__name__}: {type(exc).__name__}"]
    if digest is not None:
        _VALID[digest] = None
        if len(_VALID) > VALID_DIGESTS_KEPT:
            _VALID.popitem(last=False)
    return []


# Digests of contents that validated, newest last. An NHS answer refetched when its cache
# entry expires is usually the same record, byte for byte, and validating it again costs
# most of the miss; the same bytes validate the same way, so they are not validated twice.
# A digest (BLAKE2b, 16 bytes) of the model's name and the JSON, never the data itself; only
# successes are kept, so a bad record is always validated and reported.
VALID_DIGESTS_KEPT = 20_000
_VALID: OrderedDict[bytes, None] = OrderedDict()


def _content_digest(model: Any, resource: Mapping[str, Any]) -> bytes | None:
    try:
        body = orjson.dumps(resource)
    except (orjson.JSONEncodeError, TypeError):  # not JSON (a test's odd value): validated every time
        return None
    return hashlib.blake2b(model.__name__.encode() + b"\0" + body, digest_size=16).digest()


def r4_problems(resource: Mapping[str, Any], max_problems: int = 5) -> list[str]:
    """Empty when `resource` validates as its R4 resourceType (fhir.resources R4B, which
    shares R4's shapes for the types served here); otherwise what is wrong, as element
    paths only. The one R4 check: providers that drop a bad record with a warning use it
    directly, the NHS clients through check_r4."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype.isalpha():
        return ["resourceType: missing or not a resource type"]
    try:
        model = _r4_model(rtype)
    except (ImportError, AttributeError):
        return [f"resourceType: {rtype} is not an R4 resource type"]
    return model_problems(model, resource, max_problems)


def check_r4(resource: dict[str, Any], api: str) -> dict[str, Any]:
    """Return `resource` unchanged when it is valid R4; raise UpstreamBadResponse naming
    only the failing element paths (never values: they may be PHI)."""
    problems = r4_problems(resource)
    if problems:
        raise UpstreamBadResponse(
            api, f"converted {resource.get('resourceType')} is not valid R4 ({', '.join(problems)})"
        )
    return resource
