"""The NHS sources the façade serves, in the order their types are registered.

Adding an NHS API: its package under server/sources/ and one line here. Everything else
(URLs, emulator mounts, cache freshness, rate limits, error codes, the CapabilityStatement)
follows from the `SOURCE` each package declares (server/sources/base.py).
"""

from __future__ import annotations

from server.sources.base import Source
from server.sources.cpt.source import SOURCE as CPT
from server.sources.gpconnect.source import SOURCE as GPCONNECT
from server.sources.pds.source import SOURCE as PDS
from server.sources.referrals.source import SOURCE as REFERRALS

SOURCES: tuple[Source, ...] = (
    PDS,
    REFERRALS,
    CPT,
    GPCONNECT,
)
