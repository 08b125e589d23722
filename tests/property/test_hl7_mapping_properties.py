"""Property tests of the HL7 v2 ADT profile (500 examples): generated PID/PD1 content,
written as a real ER7 message, parsed by the `hl7` library and flattened by the intake,
maps HL7 -> FHIR -> HL7 unchanged, validates as R4, and always yields a valid
reference-PAS record (the form the intake stores)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.engine import MappingFailed, to_fhir, to_pas
from mappings.spec import load_profile
from server.pas.hl7_intake import flatten, parse
from server.pas.records import PASMappings, canonical
from tests.support.fhir_validation import validate_r4
from tests.support.pas_records import (
    ETHNICITY,
    HOSPITAL_NUMBER,
    PHONE,
    POSTCODE,
    STATUS,
    WORD,
    YMD,
    free_text,
    nhs_numbers,
    words,
)

HL7 = load_profile("hl7/adt_pid")
PAS = PASMappings(load_profile("pas/reference_pas"))

FIELDS = st.fixed_dictionaries(
    {"PID.3.MR": HOSPITAL_NUMBER, "PID.5.1": words(2, 35), "PID.7.1": YMD, "PID.8.1": st.sampled_from("MFOU")},
    optional={
        "PID.3.NH": nhs_numbers(),
        "PID.32.1": STATUS,
        "PID.5.given": st.lists(WORD, min_size=1, max_size=2),
        "PID.5.5": st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True),
        "PID.11.lines": st.lists(free_text(35), min_size=1, max_size=4),
        "PID.11.5": POSTCODE,
        "PID.13.1": PHONE,
        "PID.22.1": ETHNICITY,
        "PID.29.1": YMD,
        "PD1.3.3": st.from_regex(r"[A-Z][0-9]{5}", fullmatch=True),
    },
)


def er7(fields: dict[str, Any]) -> bytes:
    """An ADT^A04 carrying `fields` the way a PAS would send it."""
    pid = [""] * 33
    pid[1] = "1"
    ids = [f"{fields['PID.3.MR']}^^^RX1^MR"] + ([f"{fields['PID.3.NH']}^^^NHS^NH"] if "PID.3.NH" in fields else [])
    pid[3] = "~".join(reversed(ids)) if len(fields["PID.3.MR"]) % 2 else "~".join(ids)  # order must not matter
    given = fields.get("PID.5.given", [])
    pid[5] = "^".join([fields["PID.5.1"], *(given + ["", ""])[:2], "", fields.get("PID.5.5", "")]).rstrip("^")
    pid[7], pid[8] = fields["PID.7.1"], fields["PID.8.1"]
    lines = fields.get("PID.11.lines", [])
    if lines or "PID.11.5" in fields:
        pid[11] = "^".join([*(lines + [""] * 4)[:4], fields.get("PID.11.5", "")])
    pid[13] = fields.get("PID.13.1", "")
    pid[22] = fields.get("PID.22.1", "")
    pid[29] = fields.get("PID.29.1", "")
    pid[32] = fields.get("PID.32.1", "")
    segments = [
        "MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^A04^ADT_A01|MSG1|P|2.4",
        "EVN|A04|20260101120000",
        "|".join(["PID", *pid[1:]]).rstrip("|"),
    ]
    if "PD1.3.3" in fields:
        segments.append(f"PD1|||GP PRACTICE^^{fields['PD1.3.3']}")
    segments.append("PV1|1|O")
    return ("\r".join(segments) + "\r").encode()


def nested(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in fields.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FIELDS)
def test_hl7_round_trip_validity_and_pas_form(fields: dict[str, Any]) -> None:
    mapping = HL7.record("Patient")
    flat = flatten(parse(er7(fields)), HL7.options)
    patient = to_fhir(mapping, flat)
    back, problems = to_pas(mapping, patient)
    assert problems == []
    assert back == nested(fields)
    validate_r4({**patient, "id": "pas-x"})
    record, problems = to_pas(PAS.record("Patient"), patient)
    assert problems == []
    try:
        canonical(PAS.record("Patient"), record)
    except MappingFailed as failed:  # pragma: no cover - the assertion message is the point
        raise AssertionError(failed.problems) from None
