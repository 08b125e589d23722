"""The toy source as the core sees it."""

from __future__ import annotations

from server.nhs.error_codes import CodeMeaning
from server.providers.base import ResourceProvider
from server.sources.base import Offer, Source
from server.sources.upstream import Upstream
from server.sources.wiring import Wiring
from tests.support.toy_source import emulator
from tests.support.toy_source.provider import DeviceFromToy
from tests.support.toy_source.settings import ToySettings

TOY = Upstream(
    key="toy",
    api="Toy registry",
    emulator_path="toy-registry/FHIR/R4",
    emulator_routes=lambda: emulator.ROUTES,
    rate_limit=50.0,
    error_codes={"DEVICE_RETIRED": CodeMeaning.GONE},
)


def device_from_toy(w: Wiring) -> ResourceProvider:
    return DeviceFromToy(w.client(TOY), w.settings_of(ToySettings).toy_manufacturer)


SOURCE = Source(
    name="Toy device registry",
    settings=ToySettings,
    upstreams=(TOY,),
    offers=(Offer("Device", device_from_toy, freshness=0.5),),
)
