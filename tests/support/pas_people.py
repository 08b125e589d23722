"""The people the PAS integration tests register, as reference-PAS JSON records, and the
ADT message the HTTP HL7 endpoint tests send (tests/support/mllp.py has the MLLP one).

Each person is named by the emulator patient a PDS trace of their demographics finds
(server/sources/pds/emulator_data.py); a test adds what it needs (an NHS number, an
address) as keyword arguments, which win over the person's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HN_SYSTEM = "https://pas.example.org/Id/hospital-number"

# Traces to 9000000009, unrestricted (U) in PDS; GP Connect and CPT know her.
JANE = {"surname": "Smith", "forenames": "Jane", "dateOfBirth": "22/10/2010", "sex": "F"}
# Traces to 9000000025, restricted (R) in PDS.
JANET = {"surname": "Smythe", "forenames": "Janet", "dateOfBirth": "16/06/2005", "sex": "F"}
# Traces to no one: the PAS's record only.
NOBODY = {"surname": "Nobody", "forenames": "Known", "dateOfBirth": "01/01/1970", "sex": "U"}

MSH = "MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^{event}^ADT_A01|{control}|P|2.4"


def pas_record(hn: str, person: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The reference-PAS record of `person` under hospital number `hn`, `extra` on top."""
    return {"hospitalNumber": hn, **person, **extra}


def adt(event: str, *segments: str, control: str = "MSG1") -> bytes:
    """An ADT message (ER7, segments ended by CR): MSH and EVN for `event`, then `segments`."""
    return (
        "\r".join([MSH.format(event=event, control=control), f"EVN|{event}|20260101120000", *segments]) + "\r"
    ).encode()
