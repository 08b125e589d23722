"""No reference the façade emits dangles (issue 10, defect 2), over real sockets.

R4 (bundle.html, references.html): a `urn:uuid:` reference resolves only inside the Bundle
that carries its target; outside one it cannot resolve at all, and client libraries'
resolve() then GETs `[base]/urn:uuid:...`. A `#id` reference must name a resource in the
same resource's `contained`. This walks every resource the façade returns for 9000000009,
across Patient, ServiceRequest, MedicationRequest and AllergyIntolerance, reads and
searches (and e-RS in both access modes), and checks both rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.checked_client import CheckedClient
from tests.support.servers import Emulator, running_facade

NHS = "https://fhir.nhs.uk/Id/nhs-number"
UBRN = "https://fhir.nhs.uk/Id/UBRN"
UBRNS = ("000000070000", "000000070001", "000000070002", "000000070003")
CPT_USER = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
}
ERS_USER = {
    "NHSD-eRS-Business-Function": "REFERRING_CLINICIAN",
    "NHSD-End-User-Organisation-ODS": "R69",
    "X-NHS-User-Token": "caller-cis2-token",
}
SEARCHES = (
    "/Patient?family=Smith&birthdate=eq2010-10-22",
    "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009",
    "/ServiceRequest?patient=9000000009&_include=ServiceRequest:patient",
    *(f"/ServiceRequest?identifier={UBRN}|{u}" for u in UBRNS),
    "/MedicationRequest?patient=9000000009&_include=MedicationRequest:patient",
    "/AllergyIntolerance?patient=9000000009&_include=AllergyIntolerance:patient",
    "/AllergyIntolerance?patient=9000000009&clinical-status=resolved",
)
HEADERS = {**CPT_USER, **ERS_USER}


def references(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, reference) for every Reference.reference in a resource, contained ones included."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            yield path, ref
        for key, item in value.items():
            yield from references(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from references(item, f"{path}[{i}]")


def dangling(resource: dict[str, Any]) -> list[str]:
    """What is wrong with the references of one resource (empty when nothing is)."""
    contained = {c.get("id") for c in resource.get("contained") or [] if isinstance(c, dict)}
    problems = []
    for path, ref in references(resource):
        if ref.startswith("urn:"):
            problems.append(f"{resource['resourceType']}/{resource.get('id')} {path}: {ref}")
        elif ref.startswith("#") and ref != "#" and ref[1:] not in contained:
            problems.append(f"{resource['resourceType']}/{resource.get('id')} {path}: {ref} is not contained")
    return problems


def resources_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    if body.get("resourceType") == "Bundle":
        return [e["resource"] for e in body.get("entry", []) if "resource" in e]
    return [body]


@pytest.fixture
async def ers_stu3(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[CheckedClient]:
    async with running_facade(emulator, ers_access_mode="application-restricted") as url:
        yield CheckedClient(url, http)


async def walk(client: CheckedClient) -> tuple[int, list[str]]:
    """Every search, then a read of every match; the number of resources seen and the problems."""
    seen: list[dict[str, Any]] = []
    for search in SEARCHES:
        answer = await client.get(search, headers=HEADERS)
        assert answer.status == 200, (search, answer.body)
        seen.extend(resources_of(answer.body))
    read = {(r["resourceType"], r["id"]) for r in seen if r["resourceType"] != "OperationOutcome"}
    for rtype, rid in sorted(read):
        answer = await client.get(f"/{rtype}/{rid}", headers={**HEADERS, "Cache-Control": "no-cache"})
        assert answer.status == 200, (rtype, rid, answer.body)
        seen.append(answer.body)
    return len(seen), [p for r in seen for p in dangling(r)]


async def test_no_reference_for_9000000009_dangles(fhir: CheckedClient) -> None:
    count, problems = await walk(fhir)
    assert count > 20
    assert problems == [], "\n".join(problems)


async def test_no_reference_dangles_with_ers_stu3(ers_stu3: CheckedClient) -> None:
    count, problems = await walk(ers_stu3)
    assert count > 20
    assert problems == [], "\n".join(problems)
