"""HL7 ACK building and error locations (pure parts of the intake)."""

from __future__ import annotations

from server.pas.hl7_intake import HL7Problem, _location, build_ack, parse


def test_error_locations() -> None:
    assert _location("PID.7.1") == "PID^1^7^1^1"
    assert _location("PID.3.MR") == "PID^1^3"
    assert _location("surname") == ""


def test_ack_swaps_sender_and_receiver_and_escapes_diagnostics() -> None:
    message = parse(b"MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101||ADT^A08^ADT_A01|C9|P|2.4\rPID|1\r")
    ack = build_ack("AE", message, [HL7Problem("102", "bad | value ^ with & specials ~ here", "PID^1^7")])
    segments = [s.split("|") for s in ack.split("\r") if s]
    assert [s[0] for s in segments] == ["MSH", "MSA", "ERR"]
    assert segments[0][2:6] == ["FACADE", "NHS", "PAS", "RX1"]
    assert segments[1][1:3] == ["AE", "C9"]
    assert len(segments[2]) == 9  # the escaped text added no field separators
    assert "\\F\\" in segments[2][3] and "\\S\\" in segments[2][8]


def test_bare_ack_when_nothing_could_be_read() -> None:
    ack = build_ack("AR", None, [HL7Problem("100", "unreadable")])
    assert ack.startswith("MSH|^~\\&|NHS-FHIR-FACADE|") and "\rMSA|AR|\r" in ack
