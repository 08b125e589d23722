"""Which NHS environment the configured URLs point at: the switch for development conveniences.

The development token issuer (and switching off the relationship check) must never be
possible against NHS production. Each configured NHS URL is classed by its host:
- `emulator`: unset (the embedded emulator), a loopback address (a local emulator), or a
  host the operator declared as running the project's emulator (FACADE_EMULATOR_HOSTS,
  e.g. the compose service `emulator`; never an `nhs.uk` host);
- `sandbox`: NHS England's open sandbox (`sandbox.api.service.nhs.uk`);
- `integration`: NHS England's integration and development environments
  (`int.` / `internal-dev.` / `internal-qa.api.service.nhs.uk`, Spine `*.intspineservices.nhs.uk`);
- `production`: anything else, including hosts we do not recognise (fail safe).
The façade's environment is the most serious of its URLs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

ORDER = ("emulator", "sandbox", "integration", "production")
SANDBOX_HOSTS = ("sandbox.api.service.nhs.uk",)
INTEGRATION_HOSTS = (
    "int.api.service.nhs.uk",
    "internal-dev.api.service.nhs.uk",
    "internal-qa.api.service.nhs.uk",
    "intspineservices.nhs.uk",
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _nhs_host(host: str) -> bool:
    return host == "nhs.uk" or host.endswith(".nhs.uk")


def classify_url(url: str | None, emulator_hosts: Iterable[str] = ()) -> str:
    if url is None:
        return "emulator"
    host = (urlsplit(url).hostname or "").lower()
    declared = {h.lower() for h in emulator_hosts}
    if _is_loopback(host) or (host in declared and not _nhs_host(host)):
        return "emulator"
    if any(host == h or host.endswith("." + h) for h in SANDBOX_HOSTS):
        return "sandbox"
    if any(host == h or host.endswith("." + h) for h in INTEGRATION_HOSTS):
        return "integration"
    return "production"


def environment(urls: Iterable[str | None], emulator_hosts: Iterable[str] = ()) -> str:
    """The most serious environment among the URLs (emulator < sandbox < integration < production)."""
    hosts = tuple(emulator_hosts)
    return max((classify_url(u, hosts) for u in urls), key=ORDER.index, default="emulator")
