"""Benchmark: cost of the GP Connect allergy path per record, side by side.

Prints microseconds per structured record for: STU3 validation where data enters
(what the client does), the declared-rule STU3 -> R4 conversion, and R4B validation of
the output (tests only, not on the request path), with ratios to the conversion.
Run: python bench/gpconnect_allergies.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

from server.sources.gpconnect.client import parse_structured_record
from server.sources.gpconnect.emulator_data import structured_record
from server.sources.gpconnect.mapping import allergies_from_structured_record
from tests.support.fhir_validation import validate_r4


def per_call_us(fn: Callable[[], object], rounds: int = 300) -> float:
    fn()  # warm up (imports, model build)
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def main() -> None:
    record = structured_record("9000000009", True)
    assert record is not None
    converted = allergies_from_structured_record(record, "9000000009", include_resolved=True).allergies
    rows = {
        "convert STU3->R4 (4 allergies)": per_call_us(
            lambda: allergies_from_structured_record(record, "9000000009", include_resolved=True)
        ),
        "validate STU3 on entry": per_call_us(lambda: parse_structured_record(record, "9000000009")),
        "validate R4B output (tests only)": per_call_us(lambda: [validate_r4(a) for a in converted]),
    }
    base = rows["convert STU3->R4 (4 allergies)"]
    for name, us in rows.items():
        print(f"{name:36s} {us:9.1f} us   x{us / base:5.2f}")


if __name__ == "__main__":
    main()
