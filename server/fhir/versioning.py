"""Version ids, ETags and Last-Modified for resources, including upstreams that have none.

NHS APIs other than PDS give no version: we derive a stable versionId from a hash of
the content, so conditional reads (If-None-Match) still work and the same content
always has the same ETag.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache
from typing import Any

import orjson


def content_version(resource: dict[str, Any]) -> str:
    """A stable version id from the content (meta excluded, keys sorted)."""
    body = {k: v for k, v in resource.items() if k != "meta"}
    digest = hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=8)
    return digest.hexdigest()


def ensure_version(resource: dict[str, Any]) -> dict[str, Any]:
    """Return the resource with meta.versionId set (a content hash when the upstream gave none)."""
    meta = resource.get("meta") or {}
    if meta.get("versionId"):
        return resource
    return {**resource, "meta": {**meta, "versionId": content_version(resource)}}


SUBSETTED_TAG = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}


def search_copy(resource: dict[str, Any]) -> dict[str, Any]:
    """A search answer's copy of a resource whose source searches answer less than its
    reads under the same upstream versionId (ResourceProvider.search_copies_complete
    False: PDS search results lack the nominated pharmacy and other extensions a PDS read
    has). Decided: mark it, both ways FHIR gives:
    - meta.tag SUBSETTED (v3-ObservationValue), so no client takes it for the whole
      resource (or writes it back);
    - a versionId of its own, `{upstream version}-search-{content hash}`, so the copy's
      version never equals the read's: a client revalidating it with If-None-Match gets
      the full resource (200), never a 304 that would keep the partial copy forever.
      vread of that version is a 404 naming the current one: the façade holds no such
      version, which is the truth.
    Applied after ensure_version, so the base is the version a read would answer."""
    meta = dict(resource.get("meta") or {})
    version = meta.get("versionId") or content_version(resource)
    meta["versionId"] = f"{version}-search-{content_version(resource)}"[:64]
    meta["tag"] = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"] + [SUBSETTED_TAG]
    return {**resource, "meta": meta}


def etag(resource: dict[str, Any]) -> str:
    meta = resource.get("meta") or {}
    version = meta.get("versionId") or content_version(resource)
    return f'W/"{version}"'


def last_modified(resource: dict[str, Any]) -> datetime | None:
    value = (resource.get("meta") or {}).get("lastUpdated")
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@lru_cache(maxsize=1024)
def http_date(value: datetime) -> str:
    """RFC 9110 date. Memoised: a cached read formats the same lastUpdated on every hit,
    and email.utils formatting costs more than the rest of the header work together."""
    return format_datetime(value.astimezone(timezone.utc), usegmt=True)


# An HTTP-date, in any of its three forms (RFC 9110 5.6.7), is about 30 printable ASCII
# characters. Anything else is not one: email.utils would read non-ASCII digits as digits.
_HTTP_DATE_TEXT = re.compile(r"[\x20-\x7e]{1,64}", re.ASCII)


def _etag_values(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def parse_http_date(value: str) -> datetime | None:
    """An If-Modified-Since value as an aware datetime, or None when it is not an
    HTTP-date (RFC 9110 13.1.3: an invalid date makes the condition be ignored)."""
    if not _HTTP_DATE_TEXT.fullmatch(value):
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def not_modified(resource: dict[str, Any], if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110 conditional GET: If-None-Match (weak comparison) wins over If-Modified-Since."""
    if if_none_match:
        wanted = _etag_values(if_none_match)
        return "*" in wanted or etag(resource).removeprefix("W/") in wanted
    if if_modified_since:
        modified = last_modified(resource)
        since = parse_http_date(if_modified_since)
        if modified is None or since is None:
            return False
        return modified.replace(microsecond=0) <= since
    return False
