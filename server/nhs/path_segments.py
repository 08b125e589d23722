"""Caller-supplied ids as upstream URL path segments: percent-encoded, never dot segments.

`quote` alone is not enough: `.` and `..` are unreserved characters, so they pass through
unencoded, and the URL library then resolves them (RFC 3986 5.2.4) to another path on
the NHS API, e.g. `ServiceRequest/..` to the API's base. Providers validate their ids
strictly before any call; this is the clients' own last check, and refuses as a 404 (no
resource has such an id) rather than as an internal error.
"""

from __future__ import annotations

from urllib.parse import quote

from server.nhs.errors import UnsendableId

DOT_SEGMENTS = frozenset({"", ".", ".."})


def path_segment(value: str) -> str:
    """`value` as one path segment; UnsendableId (a 404) for an empty or dot segment."""
    if value in DOT_SEGMENTS:
        raise UnsendableId("No resource has an empty, '.' or '..' id")
    return quote(value, safe="")
