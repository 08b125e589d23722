"""The issue's audit test through the whole façade: MongoDB is killed during a burst of
requests and restarted; every request still got its answer (the spool took its event),
and afterwards MongoDB holds exactly one AuditEvent per request id."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import MongoClient

from server.access.audit_trail import COLLECTION
from tests.support.mongo import SecantusProcess
from tests.support.servers import Emulator, FHIRClient, running_facade

pytestmark = pytest.mark.mongo
DATABASE = "audit_facade_kill"
PATH = "/ServiceRequest?patient=9000000009"  # not PAS-backed: only the audit trail needs MongoDB


def request_ids_stored(uri: str) -> list[str]:
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        return [
            entity["what"]["identifier"]["value"]
            for doc in client[DATABASE][COLLECTION].find({}, {"event.entity": 1})
            for entity in doc["event"]["entity"]
            if "identifier" in entity.get("what", {})
        ]
    finally:
        client.close()


async def health(facade: FHIRClient) -> dict[str, Any]:
    _, _, body = await facade.get("/_health")
    return body


async def test_mongodb_killed_during_a_burst_loses_no_audit_event(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    server = SecantusProcess(storage_path=tmp_path / "db")
    await asyncio.to_thread(server.start)
    try:
        async with running_facade(
            emulator,
            mongodb_uri=server.uri,
            mongodb_database=DATABASE,
            mongodb_timeout_ms=300,
            audit_spool_dir=tmp_path / "spool",
        ) as url:
            facade = FHIRClient(url, http)
            ids = [str(uuid.uuid4()) for _ in range(90)]
            statuses: list[int] = []

            async def ask(request_id: str) -> None:
                status, _, _ = await facade.get(PATH, headers={"X-Request-ID": request_id})
                statuses.append(status)

            for n in range(0, len(ids), 10):  # ten at a time; MongoDB dies a third of the way in
                if n == 30:
                    await asyncio.to_thread(server.kill)
                await asyncio.gather(*(ask(i) for i in ids[n : n + 10]))
            assert statuses == [200] * len(ids), "no access refused: the spool took what MongoDB could not"
            assert (await health(facade))["audit"]["status"] == "spooling"

            await asyncio.to_thread(server.start)  # same port, same data
            deadline = time.monotonic() + 60
            while (await health(facade))["audit"]["status"] != "ok":
                assert time.monotonic() < deadline, "the spool never drained"
                await asyncio.sleep(0.2)
            stored = request_ids_stored(server.uri)
            for request_id in ids:
                assert stored.count(request_id) == 1, request_id
            assert len(stored) == len(set(stored)) >= len(ids)  # the /_health calls are not audited
    finally:
        await asyncio.to_thread(server.stop)
