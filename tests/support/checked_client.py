"""A FHIR test client that checks what every façade response must be, on every call.

Integration tests use it instead of FHIRClient so no response escapes the rules: the FHIR
JSON content type (errors and 304 included), an X-Request-ID, never a 500, and every
body validated as R4 (fhir.resources.R4B), Bundle entries too. A request made with
`xml=True` (the test asks for XML itself, by Accept or `_format`) must get the FHIR XML
content type instead, and a body that parses back through the R4B model; `body` is then
that resource as a dict, so the same assertions read both formats. Requests carry the default
test token (tests/support/tokens.py) unless they set Authorization or anonymous=True.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from server.fhir.xml_format import resource_from_xml
from tests.support.fhir_validation import validate_r4
from tests.support.tokens import with_default_auth

FHIR_JSON_UTF8 = "application/fhir+json; charset=utf-8"
FHIR_XML_UTF8 = "application/fhir+xml; charset=utf-8"


@dataclass
class Answer:
    status: int
    headers: Any  # multidict of the response headers
    body: Any
    raw: bytes

    @property
    def issue(self) -> dict[str, Any]:
        """The first OperationOutcome issue (error answers)."""
        assert self.body["resourceType"] == "OperationOutcome", self.body
        return self.body["issue"][0]


class CheckedClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def request(self, method: str, path: str, *, xml: bool = False, **kwargs: Any) -> Answer:
        url = path if path.startswith("http") else self.base_url + path
        async with self.session.request(method, url, **with_default_auth(kwargs)) as resp:
            raw = await resp.read()
            answer = Answer(resp.status, resp.headers, None, raw)
        assert answer.status != 500, raw
        expected = FHIR_XML_UTF8 if xml else FHIR_JSON_UTF8
        assert answer.headers.get("Content-Type") == expected, (answer.status, answer.headers)
        assert answer.headers.get("X-Request-ID"), answer.headers
        if raw:
            answer.body = resource_from_xml(raw) if xml else orjson.loads(raw)
            validate_r4(answer.body)
            if answer.status >= 400:
                issue = answer.body["issue"][0]
                assert answer.body["resourceType"] == "OperationOutcome"
                assert issue["severity"] in ("error", "fatal") and issue["code"]
                assert issue.get("diagnostics") or issue.get("details")
        return answer

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("POST", path, **kwargs)
