"""The PAS store of record as the access policy's patient directory: registration at this
hospital is the legitimate relationship the façade can see for itself.

A store outage answers "not registered" (fail closed): a clinician then needs break-glass
rather than getting data the façade could not justify.
"""

from __future__ import annotations

import re

from server.pas.store import PASStore, StoreUnavailable

NHS_NUMBER = re.compile(r"^\d{10}$")
PAS_ID = re.compile(r"^pas-([A-Za-z0-9]{1,20})$")


class PASDirectory:
    def __init__(self, store: PASStore) -> None:
        self._store = store

    async def registered(self, patient: str) -> bool:
        try:
            pas = PAS_ID.match(patient)
            if pas:
                return await self._store.get(pas.group(1)) is not None
            if NHS_NUMBER.match(patient):
                return bool(await self._store.find_by_nhs_number(patient))
        except StoreUnavailable:
            return False
        return False

    async def nhs_number(self, patient: str) -> str | None:
        if NHS_NUMBER.match(patient):
            return patient
        pas = PAS_ID.match(patient)
        if pas is None:
            return None
        try:
            stored = await self._store.get(pas.group(1))
        except StoreUnavailable:
            return None
        return stored.nhs_number if stored is not None else None
