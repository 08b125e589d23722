"""The HL7 intake's sender allow-list over real sockets: MSH-3/MSH-4 not on
FACADE_PAS_HL7_ALLOWED_SENDERS gets AR with one ERR (103 at MSH^1^3) and nothing stored."""

from __future__ import annotations

import aiohttp

from tests.support.servers import Emulator, FHIRClient, running_facade
from tests.support.tokens import with_default_auth


def adt(app: str, facility: str, hn: str, control: str = "MSG1") -> bytes:
    return (
        "\r".join(
            [
                f"MSH|^~\\&|{app}|{facility}|FACADE|NHS|20260101120000||ADT^A04^ADT_A01|{control}|P|2.4",
                "EVN|A04|20260101120000",
                f"PID|1||{hn}^^^RX1^MR||NOBODY^KNOWN||19700101|U",
            ]
        )
        + "\r"
    ).encode()


async def send(facade: FHIRClient, body: bytes) -> list[list[str]]:
    async with facade.session.post(
        facade.base_url + "/pas/v1/hl7",
        **with_default_auth({"data": body, "headers": {"Content-Type": "application/hl7-v2"}}),
    ) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/hl7-v2")
        return [line.split("|") for line in (await resp.text()).split("\r") if line]


def verdict(ack: list[list[str]]) -> tuple[str, list[list[str]]]:
    return next(s for s in ack if s[0] == "MSA")[1], [s for s in ack if s[0] == "ERR"]


async def stored(facade: FHIRClient, hn: str) -> bool:
    status, _, _ = await facade.get(f"/pas/v1/patients/{hn}")
    assert status in (200, 404)
    return status == 200


async def test_default_against_the_emulator_is_the_sandbox_sender_only(facade: FHIRClient) -> None:
    ack = await send(facade, adt("PAS", "RX1", "H1"))
    assert verdict(ack) == ("AA", [])
    for app, facility, hn in (("PAS", "RX2", "H2"), ("EVIL", "RX1", "H3"), ("pas", "RX1", "H4"), ("", "", "H5")):
        code, errs = verdict(await send(facade, adt(app, facility, hn)))
        assert code == "AR" and len(errs) == 1, (app, facility)
        assert errs[0][2] == "MSH^1^3" and errs[0][3].startswith("103^")
        assert f"application '{app}' at facility '{facility}' is not on" in errs[0][8]
        assert "nothing was stored" in errs[0][8]
        assert not await stored(facade, hn)
    # The ACK still answers the sender it refused (MSH-5/6 = its MSH-3/4, MSA-2 = its control id).
    ack = await send(facade, adt("EVIL", "RX9", "H6", control="C77"))
    msh = ack[0]
    assert msh[4:6] == ["EVIL", "RX9"] and next(s for s in ack if s[0] == "MSA")[2] == "C77"


async def test_configured_list_replaces_the_default(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, pas_hl7_allowed_senders=["EPR|*", "PAS|RX2"]) as url:
        facade = FHIRClient(url, http)
        for app, facility, hn in (("EPR", "RX1", "H1"), ("EPR", "ANYWHERE", "H2"), ("PAS", "RX2", "H3")):
            assert verdict(await send(facade, adt(app, facility, hn)))[0] == "AA", (app, facility)
            assert await stored(facade, hn)
        code, _ = verdict(await send(facade, adt("PAS", "RX1", "H4")))  # the sandbox sender is not added
        assert code == "AR" and not await stored(facade, "H4")


async def test_an_empty_list_refuses_every_sender(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, pas_hl7_allowed_senders=[]) as url:
        facade = FHIRClient(url, http)
        code, errs = verdict(await send(facade, adt("PAS", "RX1", "H1")))
        assert code == "AR" and errs[0][3].startswith("103^")
        assert not await stored(facade, "H1")
