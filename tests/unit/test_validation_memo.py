"""Contents that validated as R4 are not validated again (server/nhs/entry_validation.py):
an NHS record refetched unchanged skips fhir_core's validators, and nothing else does."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.patient import Patient

from server.nhs import entry_validation
from server.nhs.entry_validation import check_r4, model_problems
from server.nhs.errors import UpstreamBadResponse


class CountingPatient:
    """The real Patient model, counting the validations that reach it."""

    __name__ = "Patient"

    def __init__(self) -> None:
        self.calls = 0

    def model_validate(self, data: Any) -> Any:
        self.calls += 1
        return Patient.model_validate(data)


@pytest.fixture(autouse=True)
def empty_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry_validation, "_VALID", type(entry_validation._VALID)())


def patient(number: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": number,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": number}],
        **extra,
    }


def test_the_same_contents_are_validated_once() -> None:
    model = CountingPatient()
    for _ in range(3):
        assert model_problems(model, patient("9000000009")) == []
    assert model.calls == 1


def test_other_contents_are_validated_each() -> None:
    model = CountingPatient()
    assert model_problems(model, patient("9000000009")) == []
    assert model_problems(model, patient("9000000017")) == []
    assert model_problems(model, patient("9000000009", gender="female")) == []
    assert model.calls == 3


def test_invalid_contents_are_validated_and_reported_every_time() -> None:
    model = CountingPatient()
    bad = patient("9000000009", gender=["not", "a", "code"])
    for _ in range(2):
        assert model_problems(model, bad) == ["gender"]
    assert model.calls == 2
    with pytest.raises(UpstreamBadResponse):
        check_r4(bad, "PDS")


def test_the_memo_is_bounded_and_forgets_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry_validation, "VALID_DIGESTS_KEPT", 2)
    model = CountingPatient()
    for number in ("9000000009", "9000000017", "9000000025", "9000000009"):
        assert model_problems(model, patient(number)) == []
    assert len(entry_validation._VALID) == 2
    assert model.calls == 4  # the first was forgotten when the third came, so validated again


def test_a_digest_is_of_the_model_too() -> None:
    """Contents valid as one model are not taken as valid for another of the same JSON."""

    class CountingOther(CountingPatient):
        __name__ = "Other"

    patient_model, other = CountingPatient(), CountingOther()
    assert model_problems(patient_model, patient("9000000009")) == []
    assert model_problems(other, patient("9000000009")) == []
    assert (patient_model.calls, other.calls) == (1, 1)


def test_contents_that_are_not_json_are_still_validated() -> None:
    model = CountingPatient()
    odd = {**patient("9000000009"), 1: "a key that is no string"}
    for _ in range(2):
        model_problems(model, odd)
    assert model.calls == 2
