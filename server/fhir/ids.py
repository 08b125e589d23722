"""The FHIR id syntax, checked one way wherever an id is read or issued.

An id is 1 to 64 of `A-Za-z0-9`, `-` and `.` (FHIR R4 datatypes, `id`). The check is a
full match: a `^...$` search also accepts a trailing newline ("x\\n"), which is how two
copies of this rule had drifted apart.
"""

from __future__ import annotations

import re

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_fhir_id(value: str) -> bool:
    """True when `value` is a valid FHIR resource id."""
    return FHIR_ID.fullmatch(value) is not None
