"""NHS user-session headers taken from the caller, for user-restricted NHS APIs.

The Clinical Prescription Tracker (and other CIS2 APIs) need to know which role the
logged-in user acts in: `nhsd-session-urid` (role profile id, digits),
`nhsd-organization-uuid` and `nhsd-session-jobrole` (e.g. `S0030:G0100:R0570`). They
belong to the caller's session, never to the façade, so clients send them on their
FHIR request under the same header names and the façade forwards them. A missing or
malformed one is the client's error: 400 naming the header, before any NHS call
(CPT itself answers 400 "Missing required header" too; see shared/reference/nhs-apis.md
s.2.1). Values are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from server.nhs.errors import CallerInputError

SESSION_URID = "nhsd-session-urid"
ORGANIZATION_UUID = "nhsd-organization-uuid"
SESSION_JOBROLE = "nhsd-session-jobrole"
CPT_SESSION_HEADERS = (SESSION_URID, ORGANIZATION_UUID, SESSION_JOBROLE)

_SAFE_VALUE = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, no spaces, bounded
_PATTERNS = {SESSION_URID: re.compile(r"^[0-9]{1,64}$")}


class MissingSessionHeader(CallerInputError):
    """A required NHS session header is absent or malformed on the inbound request."""

    issue_code = "required"


def _lookup(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value.strip() if isinstance(value, str) else None


def session_headers(headers: Mapping[str, str], names: tuple[str, ...] = CPT_SESSION_HEADERS) -> dict[str, str]:
    """The named session headers from the inbound request, checked; raises a 400 naming
    the first missing or malformed one."""
    out: dict[str, str] = {}
    for name in names:
        value = _lookup(headers, name)
        if not value:
            raise MissingSessionHeader(
                f"Header '{name}' is required: the Prescription Tracker acts for the signed-in user's role, so "
                f"send {', '.join(names)} from the user's CIS2 session"
            )
        pattern = _PATTERNS.get(name, _SAFE_VALUE)
        if not pattern.match(value) or not _SAFE_VALUE.match(value):
            raise MissingSessionHeader(f"Header '{name}' has an invalid value")
        out[name] = value
    return out
