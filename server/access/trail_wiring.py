"""Open the audit trail for the app lifespan: MongoDB (with the local spool) when a MongoDB
is configured, else in memory (sandbox: lost when the process stops, and said so).

The spool directory defaults to a per-user state directory, never the working tree:
$XDG_STATE_HOME/nhs-fhir-facade/audit-spool, else ~/.local/state/nhs-fhir-facade/audit-spool.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from server.access.audit_spool import AuditSpool
from server.access.audit_trail import AuditTrail, InMemoryAuditTrail, MongoAuditTrail
from server.settings import Settings

log = logging.getLogger("facade.audit")


def default_spool_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nhs-fhir-facade" / "audit-spool"


@contextlib.asynccontextmanager
async def open_audit_trail(
    settings: Settings, mongo: AsyncMongoClient[dict[str, Any]] | None
) -> AsyncIterator[AuditTrail]:
    trail: AuditTrail
    if mongo is None:
        log.info("audit trail: in memory (sandbox; events are lost when the process stops)")
        trail = InMemoryAuditTrail()
    else:
        spool_dir = settings.audit_spool_dir or default_spool_dir()
        trail = MongoAuditTrail(mongo[settings.mongodb_database], AuditSpool(spool_dir))
        log.info("audit trail: MongoDB, database %s, spool %s", settings.mongodb_database, spool_dir)
    await trail.start()
    try:
        yield trail
    finally:
        await trail.aclose()
