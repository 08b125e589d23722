"""What an ACK stands for in the MLLP listener's audit record and log: read from the ACK
the intake built, never raising on any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.pas.hl7_intake import INTERNAL, TABLE_VALUE, HL7Problem, build_ack, parse
from server.pas.mllp import _certificate_subject, ack_code, ack_status

A04 = parse(b"MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^A04^ADT_A01|CTRL42|P|2.4\rPID|1||H1^^^RX1^MR\r")


def test_each_verdict_maps_to_its_status() -> None:
    assert ack_code(build_ack("AA", A04, [])) == "AA" and ack_status(build_ack("AA", A04, [])) == 200
    assert ack_status(build_ack("AE", A04, [HL7Problem("102", "bad date")])) == 422
    assert ack_status(build_ack("AR", A04, [HL7Problem(TABLE_VALUE, "sender not allowed")])) == 403
    assert ack_status(build_ack("AR", A04, [HL7Problem(INTERNAL, "store down")])) == 503
    assert ack_status(build_ack("AR", None, [HL7Problem("100", "unreadable")])) == 400


@given(st.text())
def test_any_text_reads_as_some_verdict_without_raising(text: str) -> None:
    assert ack_status(text) in (200, 400, 403, 422, 503)
    assert isinstance(ack_code(text), str)


def test_the_certificate_subject_is_its_common_name() -> None:
    cert = {"subject": ((("countryName", "GB"),), (("commonName", "pas.trust.nhs.uk"),))}
    assert _certificate_subject(cert) == "pas.trust.nhs.uk"
    assert _certificate_subject(None) is None and _certificate_subject({"subject": ()}) is None
