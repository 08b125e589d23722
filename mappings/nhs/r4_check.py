"""Is this dict valid FHIR R4? Asked once, where NHS data enters the façade.

Uses the fhir.resources R4B models (R4B shares R4's ServiceRequest, Patient and Bundle
shapes). Problems are reported as element paths and pydantic's message only, never
the offending values: those may be patient data and these strings reach logs and
OperationOutcomes.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from pydantic import ValidationError


def r4_problems(resource: Mapping[str, Any], max_problems: int = 3) -> list[str]:
    """Empty when `resource` validates as its R4 resourceType; otherwise what is wrong."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype.isalpha():
        return ["resourceType: missing or not a resource type"]
    try:
        module = importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}")
        model = getattr(module, rtype)
    except (ImportError, AttributeError):
        return [f"resourceType: {rtype} is not an R4 resource type"]
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or rtype}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        return problems[:max_problems] or [f"{rtype}: invalid"]
    except (ValueError, TypeError, KeyError) as exc:  # fhir.resources' own validators and type lookups
        # (a contained resource of an unknown resourceType is a KeyError)
        return [f"{rtype}: {type(exc).__name__}"]
    return []
