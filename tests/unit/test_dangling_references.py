"""server.nhs.references: no reference the façade serves dangles (issue 10, defect 2)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from server.nhs.references import drop_dangling_references, resolves


def test_what_resolves() -> None:
    contained = {"a"}
    assert resolves("#", contained) and resolves("#a", contained)
    assert not resolves("#b", contained)
    assert resolves("https://example.org/fhir/Practitioner/1", contained)
    assert resolves("Patient/9000000009", contained, {"Patient"})
    assert resolves("Patient/9000000009/_history/2", contained, {"Patient"})
    assert resolves("Practitioner/1", contained)  # served_types None: relative kept
    assert not resolves("Practitioner/1", contained, {"Patient"})
    for dangling in ("urn:uuid:7d948662-bade-450e-b6c5-9bb6ee39cb56", "urn:oid:1.2.3", "d5ffd0cd-ec7e", ""):
        assert not resolves(dangling, contained)


def test_a_dangling_reference_keeps_what_identifies_it_or_goes() -> None:
    resource = {
        "resourceType": "ServiceRequest",
        "id": "x",
        "contained": [{"resourceType": "Practitioner", "id": "p"}],
        "subject": {"reference": "Patient/9000000009"},
        "requester": {"reference": "urn:uuid:1", "display": "Dr A"},
        "performer": [
            {"reference": "urn:uuid:2"},
            {"reference": "#p"},
            {"reference": "#q", "identifier": {"value": "1"}},
        ],
        "encounter": {"reference": "urn:uuid:3"},
        "basedOn": [{"reference": "urn:uuid:4"}],
        "extension": [
            {"url": "https://e/appointment", "valueReference": {"reference": "Appointment/1"}},
            {"url": "https://e/priority", "valueCode": "routine"},
        ],
    }
    before = copy.deepcopy(resource)
    out, repairs = drop_dangling_references(resource, served_types={"Patient"})
    assert resource == before  # pure
    assert out == {
        "resourceType": "ServiceRequest",
        "id": "x",
        "contained": [{"resourceType": "Practitioner", "id": "p"}],
        "subject": {"reference": "Patient/9000000009"},
        "requester": {"display": "Dr A"},
        "performer": [{"reference": "#p"}, {"identifier": {"value": "1"}}],
        "extension": [{"url": "https://e/priority", "valueCode": "routine"}],
    }
    assert sorted(repairs) == [
        "dropped basedOn (its reference cannot resolve)",
        "dropped encounter (its reference cannot resolve)",
        "dropped extension.valueReference (its reference cannot resolve)",
        "dropped performer (its reference cannot resolve)",
        "dropped performer.reference (it cannot resolve)",
        "dropped requester.reference (it cannot resolve)",
    ]
    assert "urn:" not in json.dumps(repairs)  # paths, never values


# ---- property: whatever the shape, nothing dangles, nothing else changes ----------------

REFERENCES = st.one_of(
    st.uuids().map(lambda u: f"urn:uuid:{u}"),
    st.sampled_from(["#c1", "#c2", "#", "Patient/9000000009", "Practitioner/7", "https://x.org/Organization/1", "abc"]),
)
REFERENCE_TYPES = st.fixed_dictionaries(
    {"reference": REFERENCES},
    optional={
        "display": st.text(min_size=1, max_size=5),
        "identifier": st.just({"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A1"}),
        "type": st.just("Organization"),
    },
)
LEAVES = st.one_of(st.text(max_size=5), st.integers(), st.booleans(), REFERENCE_TYPES)
TREES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "valueReference", "item", "url"]), children, min_size=1, max_size=3),
    ),
    max_leaves=12,
)


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["subject", "requester", "performer", "extension", "note"]), TREES, max_size=4),
    st.sampled_from([[], ["c1"], ["c1", "c2"]]),
)
def test_no_reference_dangles_and_resolvable_ones_are_kept(body: dict[str, Any], contained: list[str]) -> None:
    resource = {"resourceType": "ServiceRequest", "id": "x", **body}
    if contained:
        resource["contained"] = [{"resourceType": "Organization", "id": c} for c in contained]
    before = copy.deepcopy(resource)
    out, _ = drop_dangling_references(resource, served_types={"Patient"})
    assert resource == before
    assert out["resourceType"] == "ServiceRequest" and out["id"] == "x"
    kept = _references(out)
    assert all(resolves(r, set(contained), {"Patient"}) for r in kept)
    assert sorted(kept) == sorted(r for r in _references(before) if resolves(r, set(contained), {"Patient"}))
    # Idempotent: a repaired resource needs no more repair.
    assert drop_dangling_references(out, served_types={"Patient"}) == (out, [])
