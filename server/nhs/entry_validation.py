"""R4 validation of converted upstream data, once, where it enters the façade.

Upstream answers are converted to plain dicts on the request path; each converted
resource is parsed once with the fhir.resources R4B model here, so nothing the façade
emits from an NHS API can be invalid R4, and a bad upstream record is reported as the
upstream's fault (502) rather than served.
"""
from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from server.nhs.errors import UpstreamBadResponse


@lru_cache(maxsize=None)
def _model(resource_type: str) -> Any:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def check_r4(resource: dict[str, Any], api: str) -> dict[str, Any]:
    """Return `resource` unchanged when it is valid R4; raise UpstreamBadResponse naming
    only the failing element paths (never values: they may be PHI)."""
    try:
        _model(resource["resourceType"]).model_validate(resource)
    except ValidationError as exc:
        paths = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})[:5]
        raise UpstreamBadResponse(api, f"converted {resource['resourceType']} is not valid R4 ({', '.join(paths)})") \
            from None
    return resource
