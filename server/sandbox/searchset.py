"""The R4 searchset body the emulated BaRS and e-RS (A041) answer a search with.

Both NHS R4 APIs send the standard shape: a fullUrl under the server's base for each
match, `total`, a self link, and no `entry` at all when nothing matched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request


def searchset(request: Request, resources: Iterable[dict[str, Any]], resource_path: str) -> dict[str, Any]:
    """A searchset of `resources`, each at `{base}/{resource_path}/{id}` (base: the mount point)."""
    base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
    entries = [
        {"fullUrl": f"{base}/{resource_path}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in resources
    ]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": str(request.url)}],
    }
    if entries:
        bundle["entry"] = entries
    return bundle
