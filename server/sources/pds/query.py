"""FHIR Patient search -> PDS query parameters. Pure; raises 400s naming the parameter.

PDS is narrower than FHIR search, so every translation choice is explicit here:
- string params (family, given, address-postalcode): FHIR's default is starts-with, sent
  to PDS as a trailing wildcard (`Smi*`; PDS forbids wildcards in the first two
  characters, so shorter values are sent as exact); `:exact` is sent as-is; `:contains`
  has no PDS equivalent and is a 400.
- birthdate/death-date: PDS takes eq/ge/le on whole days only. Partial dates become the
  day range they cover; gt/sa become ge of the next day, lt/eb le of the previous day;
  ne, ap and times of day cannot be expressed and are a 400.
- OR (comma) values: PDS has no OR; more than one value is a 400.
- minimum search data is checked here, before PDS sees the request (no avoidable load).
"""

from __future__ import annotations

from datetime import date, timedelta

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_params import DateValue, MissingValue, ParsedParam, ReferenceValue, StringValue, TokenValue
from server.fhir.search_request import SearchRequest
from server.nhs.identifiers import ODS_SYSTEM

GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
GENDERS = ("male", "female", "other", "unknown")
_FLAGS = {"_fuzzy-match": "_fuzzy-match", "_exact-match": "_exact-match", "_history": "_history"}


def _single(param: ParsedParam) -> object:
    if len(param.values) != 1:
        raise InvalidSearchParameter(f"Parameter '{param.name}': PDS cannot search for one of several values")
    if isinstance(param.values[0], MissingValue):
        # e.g. `_fuzzy-match:missing=true`: PDS has no "element absent" search (was a 500).
        raise InvalidSearchParameter(
            f"Parameter '{param.name}:missing' is not supported: PDS cannot search for absent elements"
        )
    return param.values[0]


def _string(param: ParsedParam, fuzzy: bool) -> str:
    value = _single(param)
    assert isinstance(value, StringValue)
    if param.modifier == "contains":
        raise InvalidSearchParameter(f"Parameter '{param.name}:contains' is not supported by PDS")
    text = value.value
    if param.modifier == "exact" or fuzzy or len(text) < 2 or text.endswith("*"):
        return text
    return f"{text}*"


def _day(value: DateValue, offset_days: int = 0) -> str:
    return (value.start + timedelta(days=offset_days)).date().isoformat()


def pds_dates(param: ParsedParam) -> list[str]:
    """One FHIR date value as PDS `eq|ge|le` day values (one or two of them)."""
    value = _single(param)
    assert isinstance(value, DateValue)
    if value.precision == "time":
        raise InvalidSearchParameter(f"Parameter '{param.name}': PDS searches whole days, not times")
    last_day = (value.end - timedelta(days=1)).date().isoformat()
    first_day = value.start.date().isoformat()
    single = value.precision == "day"
    p = value.prefix
    if p == "eq":
        return [f"eq{first_day}"] if single else [f"ge{first_day}", f"le{last_day}"]
    if p == "ge":
        return [f"ge{first_day}"]
    if p == "le":
        return [f"le{last_day}"]
    if p in ("gt", "sa"):
        return [f"ge{value.end.date().isoformat()}"]
    if p in ("lt", "eb"):
        if value.start.date() == date.min:
            raise InvalidSearchParameter(f"Parameter '{param.name}': no date is before {first_day}")
        return [f"le{_day(value, -1)}"]
    raise InvalidSearchParameter(
        f"Parameter '{param.name}': prefix '{p}' is not supported by PDS (eq, ge, le, gt, lt, sa, eb)"
    )


def _token_code(param: ParsedParam, system: str) -> str:
    value = _single(param)
    assert isinstance(value, TokenValue)
    if param.modifier:
        raise InvalidSearchParameter(f"Parameter '{param.name}:{param.modifier}' is not supported by PDS")
    if not value.any_system and value.system not in (None, system):
        raise InvalidSearchParameter(f"Parameter '{param.name}': system must be {system}")
    if not value.code:
        raise InvalidSearchParameter(f"Parameter '{param.name}' needs a code")
    return value.code


def _gp(param: ParsedParam) -> str:
    value = _single(param)
    assert isinstance(value, ReferenceValue)
    if value.identifier is not None:
        ident = value.identifier
        if not ident.any_system and ident.system != ODS_SYSTEM:
            raise InvalidSearchParameter(f"Parameter 'general-practitioner:identifier' takes {ODS_SYSTEM}|code")
        if not ident.code:
            raise InvalidSearchParameter("Parameter 'general-practitioner' needs an ODS code")
        return ident.code
    if value.resource_type not in (None, "Organization"):
        raise InvalidSearchParameter("Parameter 'general-practitioner': PDS knows GP practices (Organization) only")
    return str(value.id)


def _flag(param: ParsedParam) -> bool:
    value = _single(param)
    assert isinstance(value, TokenValue)
    if value.code not in ("true", "false") or not value.any_system:
        raise InvalidSearchParameter(f"Parameter '{param.name}' takes true or false")
    return value.code == "true"


def pds_search_params(request: SearchRequest) -> list[tuple[str, str]]:
    """Translate a parsed Patient search (identifier excluded) into PDS parameters."""
    fuzzy = any(_flag(p) for p in request.get("_fuzzy-match"))
    out: list[tuple[str, str]] = []
    for param in request.params:
        if param.modifier == "missing":
            raise InvalidSearchParameter(f"Parameter '{param.name}:missing' is not supported by PDS")
        name = param.name
        if name in ("family", "given", "address-postalcode"):
            out.append((name, _string(param, fuzzy)))
        elif name in ("birthdate", "death-date"):
            out.extend((name, v) for v in pds_dates(param))
        elif name == "gender":
            code = _token_code(param, GENDER_SYSTEM)
            if code not in GENDERS:
                raise InvalidSearchParameter(f"Parameter 'gender' takes one of {', '.join(GENDERS)}, not '{code}'")
            out.append(("gender", code))
        elif name == "general-practitioner":
            out.append(("general-practitioner", _gp(param)))
        elif name in ("email", "phone"):
            value = _single(param)
            assert isinstance(value, TokenValue)
            if not value.code:
                raise InvalidSearchParameter(f"Parameter '{name}' needs a value")
            out.append((name, value.code))
        elif name in _FLAGS:
            out.append((_FLAGS[name], "true" if _flag(param) else "false"))
    check_minimum(out, fuzzy)
    return out


def check_minimum(pairs: list[tuple[str, str]], fuzzy: bool) -> None:
    """PDS's minimum search data, checked locally so PDS never sees a doomed request."""
    names = {n for n, _ in pairs}
    if fuzzy:
        combos = (
            {"given", "family", "birthdate"},
            {"family", "birthdate", "gender", "address-postalcode"},
            {"given", "birthdate", "gender", "address-postalcode"},
        )
        if not any(c <= names for c in combos):
            raise InvalidSearchParameter(
                "A fuzzy PDS search needs given+family+birthdate, family+birthdate+gender+address-postalcode, "
                "or given+birthdate+gender+address-postalcode"
            )
        return
    if not {"family", "birthdate"} <= names:
        raise InvalidSearchParameter(
            "A Patient search needs identifier (NHS number), or at least family and birthdate (PDS minimum)"
        )
