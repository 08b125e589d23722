"""Search-parameter parsing: raw query pairs in, typed values out, once, in the server.

Providers never see strings: they get TokenValue, StringValue, DateValue and
ReferenceValue objects, grouped as FHIR asks (a repeated parameter is AND, a comma
inside one value is OR). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal, TypeVar

from mappings.paths import parse_union
from server.fhir.errors import InvalidSearchParameter

ParamType = Literal["token", "string", "date", "reference"]
Evaluation = Literal["upstream", "local"]

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
T = TypeVar("T")


@dataclass(frozen=True)
class SearchParamSpec:
    """What a provider declares about one search parameter (also feeds the CapabilityStatement).

    `evaluated` says who applies the parameter to a search's answer, so that it is applied
    once, by one rule, to every record whatever its source:
    - "upstream": the provider's source, exactly: the NHS API asked with it (PDS's family,
      whose fuzzy match no local rule could repeat; GP Connect's patient), or the provider
      itself where it selects records by it (a PAS composite's patient). The core does
      not evaluate it again.
    - "local": the core, after the provider answers, with the one matcher
      (server.fhir.search_match) over `path`: for what an NHS API cannot filter, and for
      what it filters only coarsely (GP Connect's clinical-status is one switch). The
      provider may still use the parameter to narrow what it asks for, as long as what it
      asks for is a superset of the matches.
    A locally evaluated parameter needs a `path`: declaring one without it fails at once,
    when the provider class is defined, never on a request; so does a path that is not
    mappings/paths.py syntax (the one the matcher, _sort and _include walk).
    """

    name: str
    type: ParamType
    documentation: str
    definition: str | None = None
    # Element path (mappings/paths.py) used for local evaluation, _sort and _include; `a|b`
    # is a union (occurrenceDateTime|occurrencePeriod), as in FHIRPath.
    path: str | None = None
    target_types: tuple[str, ...] = ()
    # The modifiers this parameter answers (accepted_modifiers): None = its type's
    # (TYPE_MODIFIERS, all of which the one matcher evaluates); a tuple = exactly those,
    # for a parameter whose source does less (PDS: no :contains, no :missing) or more.
    # The parser refuses any other (400), and the CapabilityStatement and OpenAPI list
    # exactly these, so the documents and the parser cannot disagree.
    modifiers: tuple[str, ...] | None = None
    evaluated: Evaluation = "upstream"

    def __post_init__(self) -> None:
        if self.evaluated == "local" and not self.path:
            raise ValueError(f"Search parameter '{self.name}' is evaluated locally but declares no element path")
        if self.path:
            parse_union(self.path)  # raises PathError (a ValueError) naming the bad segment


@dataclass(frozen=True)
class TokenValue:
    """`system|code`, `|code` (no system), `code` (any system), `system|` (any code)."""

    system: str | None
    code: str | None
    any_system: bool = False

    def matches(self, system: str | None, code: str | None) -> bool:
        if not self.any_system and (self.system or None) != (system or None):
            return False
        return self.code is None or self.code == code

    def text(self) -> str:
        if self.any_system:
            return escape(self.code or "")
        return f"{escape(self.system or '')}|{escape(self.code or '')}"


@dataclass(frozen=True)
class StringValue:
    value: str

    def text(self) -> str:
        return escape(self.value)


@dataclass(frozen=True)
class DateValue:
    """A date with its prefix, as the half-open instant range [start, end) it denotes."""

    prefix: str
    literal: str
    start: datetime
    end: datetime
    precision: Literal["year", "month", "day", "time"]

    def text(self) -> str:
        return f"{self.prefix}{self.literal}"

    def matches(self, start: datetime, end: datetime) -> bool:
        """FHIR R4 search.html#prefix semantics against a target range [start, end)."""
        contained = start >= self.start and end <= self.end
        p = self.prefix
        if p == "eq":
            return contained
        if p == "ne":
            return not contained
        if p == "gt":
            return end > self.end
        if p == "lt":
            return start < self.start
        if p == "ge":
            return end > self.end or contained
        if p == "le":
            return start < self.start or contained
        if p == "sa":
            return start >= self.end
        if p == "eb":
            return end <= self.start
        # ap: overlap with the value widened by 10% of its distance from now (min one day).
        gap = abs(datetime.now(timezone.utc) - self.start) * 0.1
        slack = max(gap, timedelta(days=1))
        return start < _shifted(self.end, slack) and end > _shifted(self.start, -slack)


_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def _shifted(value: datetime, delta: timedelta) -> datetime:
    """value + delta, saturating at the ends of the calendar instead of overflowing."""
    try:
        return value + delta
    except OverflowError:
        return _LATEST if delta > timedelta(0) else _EARLIEST


@dataclass(frozen=True)
class ReferenceValue:
    """`123`, `Patient/123`, an absolute URL, or a chained `patient.identifier=` token."""

    resource_type: str | None
    id: str | None
    identifier: TokenValue | None = None

    def text(self) -> str:
        if self.identifier is not None:
            return self.identifier.text()
        return f"{self.resource_type}/{self.id}" if self.resource_type else str(self.id)


@dataclass(frozen=True)
class MissingValue:
    missing: bool

    def text(self) -> str:
        return "true" if self.missing else "false"


Value = TokenValue | StringValue | DateValue | ReferenceValue | MissingValue


@dataclass(frozen=True)
class ParsedParam:
    """One occurrence of a parameter: its values are OR-ed."""

    name: str
    modifier: str | None
    values: tuple[Value, ...]

    def key(self) -> str:
        return f"{self.name}:{self.modifier}" if self.modifier else self.name

    def text(self) -> str:
        return ",".join(v.text() for v in self.values)


def all_of(alternatives: Iterable[Set[T]]) -> set[T] | None:
    """What every one of a parameter's repeats allows, given each repeat's alternatives (its
    OR-ed values): their intersection, as repeats are AND; None when there is no repeat."""
    result: set[T] | None = None
    for allowed in alternatives:
        result = set(allowed) if result is None else result & allowed
    return result


def escape(value: str) -> str:
    """Re-escape the characters FHIR search gives meaning to."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def split_unescaped(value: str, sep: str) -> list[str]:
    """Split on `sep` not preceded by a backslash, and unescape the parts."""
    return [_unescape(part) for part in _split_raw(value, sep)]


def _split_raw(value: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split on unescaped `sep` (at most `maxsplit` times when not negative), keeping
    escapes in place for the per-type parser: the one scanner of FHIR search escapes."""
    parts: list[str] = []
    start = 0
    i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return parts


_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def _unescape(value: str) -> str:
    """Drop the backslash of each escape (a trailing lone backslash stays)."""
    return _ESCAPED.sub(r"\1", value)


def parse_token(name: str, raw: str) -> TokenValue:
    """Parse one token value (no commas)."""
    if raw == "":
        raise InvalidSearchParameter(f"Parameter '{name}' has an empty token value")
    split = _split_raw(raw, "|", maxsplit=1)
    if len(split) == 1:
        return TokenValue(system=None, code=_unescape(raw), any_system=True)
    system, code = (_unescape(p) for p in split)
    if not system and not code:
        raise InvalidSearchParameter(f"Parameter '{name}': '|' alone is not a token")
    return TokenValue(system=system or None, code=code or None)


_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<frac>\.\d{1,9})?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _add_months(value: datetime, months: int) -> datetime:
    total = value.month - 1 + months
    return value.replace(year=value.year + total // 12, month=total % 12 + 1)


def parse_date(name: str, raw: str) -> DateValue:
    """Parse `[prefix]date` into the instant range it covers; partial dates are ranges.

    >>> parse_date("birthdate", "ge2010-10").start.isoformat()
    '2010-10-01T00:00:00+00:00'
    """
    prefix = raw[:2] if raw[:2] in DATE_PREFIXES else "eq"
    literal = raw[2:] if raw[:2] in DATE_PREFIXES else raw
    match = _DATE_RE.match(literal)
    if not match:
        raise InvalidSearchParameter(
            f"Parameter '{name}': '{raw}' is not a FHIR date "
            "(expected [eq|ne|gt|lt|ge|le|sa|eb|ap]YYYY[-MM[-DD[Thh:mm[:ss][Z|+hh:mm]]]])"
        )
    g = match.groupdict()
    try:
        year = int(g["year"])
        if g["month"] is None:
            start = datetime(year, 1, 1, tzinfo=timezone.utc)
            return DateValue(prefix, literal, start, start.replace(year=year + 1), "year")
        month = int(g["month"])
        if g["day"] is None:
            start = datetime(year, month, 1, tzinfo=timezone.utc)
            return DateValue(prefix, literal, start, _add_months(start, 1), "month")
        day = int(g["day"])
        if g["hour"] is None:
            start = datetime(year, month, day, tzinfo=timezone.utc)
            return DateValue(prefix, literal, start, start + timedelta(days=1), "day")
        tz = timezone.utc
        if g["tz"] and g["tz"] != "Z":
            sign = 1 if g["tz"][0] == "+" else -1
            hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        second = int(g["second"] or 0)
        frac = g["frac"]
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        local = datetime(year, month, day, int(g["hour"]), int(g["minute"]), second, micro, tzinfo=tz)
        start = local.astimezone(timezone.utc)  # UTC, so comparisons can never overflow
        step = timedelta(seconds=1) if g["second"] else timedelta(minutes=1)
        if frac:
            step = timedelta(microseconds=1)
        return DateValue(prefix, literal, start, start + step, "time")
    except ValueError as exc:  # e.g. month 13, 30 February, hour 25
        raise InvalidSearchParameter(f"Parameter '{name}': '{raw}' is not a valid date ({exc})") from None
    except OverflowError:  # the range ends after 9999-12-31 or starts before 0001-01-01
        raise InvalidSearchParameter(
            f"Parameter '{name}': '{raw}' is outside the dates this server can search"
        ) from None


def fhir_date_range(value: str) -> tuple[datetime, datetime] | None:
    """The range a FHIR date/dateTime element covers; None when it is not one."""
    try:
        parsed = parse_date("value", value)
    except InvalidSearchParameter:
        return None
    return parsed.start, parsed.end


_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def parse_reference(name: str, raw: str, type_modifier: str | None, targets: Iterable[str]) -> ReferenceValue:
    """`123`, `Patient/123` or `[url]/Patient/123`; a type modifier fixes the type."""
    targets = tuple(targets)
    value = raw.rstrip("/")
    parts = value.split("/")
    rtype: str | None
    if len(parts) >= 2 and parts[-2][:1].isupper():
        rtype, rid = parts[-2], parts[-1]
    elif len(parts) == 1:
        rtype, rid = type_modifier or (targets[0] if len(targets) == 1 else None), parts[0]
    else:
        raise InvalidSearchParameter(f"Parameter '{name}': '{raw}' is not a reference")
    if type_modifier and rtype != type_modifier:
        raise InvalidSearchParameter(f"Parameter '{name}:{type_modifier}': '{raw}' refers to a {rtype}")
    if targets and rtype is not None and rtype not in targets:
        raise InvalidSearchParameter(f"Parameter '{name}' refers to {', '.join(targets)}, not {rtype}")
    if not _ID_RE.match(rid):
        raise InvalidSearchParameter(f"Parameter '{name}': '{rid}' is not a valid resource id")
    return ReferenceValue(resource_type=rtype, id=rid)


# What each search type answers by default: the one matcher (server.fhir.search_match)
# evaluates every one of these, so a locally evaluated parameter can keep the default.
TYPE_MODIFIERS: dict[str, tuple[str, ...]] = {
    "token": ("missing", "not", "text"),
    "string": ("missing", "exact", "contains"),
    "date": ("missing",),
    "reference": ("missing", "identifier"),
}


def accepted_modifiers(spec: SearchParamSpec) -> tuple[str, ...]:
    """The modifiers `spec` answers, besides a reference's type modifier (`:Patient`, one
    of its target types). A reference accepting `:identifier` also takes the
    `.identifier` chain (the same search, FHIR R4 search.html#modifiers)."""
    return TYPE_MODIFIERS.get(spec.type, ()) if spec.modifiers is None else spec.modifiers


def accepted_chains(spec: SearchParamSpec) -> tuple[str, ...]:
    """The chains `spec` answers: `.identifier` on a reference accepting `:identifier`."""
    return ("identifier",) if spec.type == "reference" and "identifier" in accepted_modifiers(spec) else ()


def parse_param(spec: SearchParamSpec, modifier: str | None, raw: str, chain: str | None = None) -> ParsedParam:
    """Parse one occurrence of a declared parameter into its OR-ed typed values."""
    label = f"{spec.name}:{modifier}" if modifier else spec.name
    if chain is not None:
        if chain not in accepted_chains(spec):
            raise InvalidSearchParameter(f"Chained parameter '{spec.name}.{chain}' is not supported")
        values: tuple[Value, ...] = tuple(
            ReferenceValue(None, None, identifier=parse_token(f"{spec.name}.identifier", part))
            for part in _split_raw(raw, ",")
        )
        # patient.identifier=x is patient:identifier=x (FHIR R4 search.html#modifiers).
        return ParsedParam(spec.name, "identifier", values)
    accepted = accepted_modifiers(spec)
    if modifier == "missing" and "missing" in accepted:
        if raw not in ("true", "false"):
            raise InvalidSearchParameter(f"Parameter '{label}' takes true or false, not '{raw}'")
        return ParsedParam(spec.name, modifier, (MissingValue(raw == "true"),))
    type_modifier: str | None = None
    if modifier is not None and modifier not in accepted:
        if spec.type == "reference" and modifier[:1].isupper():
            type_modifier = modifier
        else:
            listed = ", ".join(f":{m}" for m in accepted) or "none"
            raise InvalidSearchParameter(
                f"Parameter '{label}': modifier ':{modifier}' is not supported on '{spec.name}' (supported: {listed})"
            )
    parts = _split_raw(raw, ",")
    if spec.type == "token":
        values = tuple(parse_token(label, p) for p in parts)
    elif spec.type == "string":
        if any(p == "" for p in parts):
            raise InvalidSearchParameter(f"Parameter '{label}' has an empty value")
        values = tuple(StringValue(_unescape(p)) for p in parts)
    elif spec.type == "date":
        values = tuple(parse_date(label, p) for p in parts)
    else:
        if modifier == "identifier":
            values = tuple(ReferenceValue(None, None, identifier=parse_token(label, p)) for p in parts)
        else:
            values = tuple(parse_reference(label, p, type_modifier, spec.target_types) for p in parts)
    return ParsedParam(spec.name, modifier, values)
