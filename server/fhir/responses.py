"""FHIRResponse: renders a dict with orjson under the FHIR JSON media type.

Every FHIR answer is built as JSON; one that asked for XML is re-rendered at the edge
(server.fhir.xml_format), so nothing here needs to know the format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"


class FHIRResponse(Response):
    """A FHIR JSON body; `pretty` indents it (the `_pretty` parameter)."""

    media_type = f"{FHIR_JSON}; charset=utf-8"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        pretty: bool = False,
    ) -> None:
        self._pretty = pretty
        super().__init__(content, status_code=status_code, headers=headers)

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        option = orjson.OPT_INDENT_2 if getattr(self, "_pretty", False) else 0
        return orjson.dumps(content, option=option)


def not_modified(headers: Mapping[str, str]) -> Response:
    """304 with no body but the validators, as RFC 9110 asks."""
    response = Response(status_code=304, headers=dict(headers))
    response.headers["content-type"] = f"{FHIR_JSON}; charset=utf-8"
    return response
