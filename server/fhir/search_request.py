"""A whole search request: declared parameters parsed, result parameters (_count,
_summary, _elements, _include, _revinclude, _sort, _total) read, unknown ones noted.

Pure: takes the merged query pairs and a provider's declarations, returns a
SearchRequest or raises InvalidSearchParameter naming the parameter. Linear in the size
of the request (duplicates are found with sets, never by scanning lists), and every list
a client controls is counted against the request limits (server.fhir.request_limits)
before it is parsed: one search must not hold the event loop for seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server.fhir.errors import InvalidSearchParameter
from server.fhir.request_limits import check_count, current_limits
from server.fhir.search_params import ParsedParam, SearchParamSpec, escape, parse_param, split_unescaped

SUMMARY_MODES = ("true", "false", "count", "text", "data")
TOTAL_MODES = ("none", "estimate", "accurate")
# Parameters the HTTP layer consumes; never reported as unknown, never in `self`.
TRANSPORT_PARAMS = frozenset({"_format", "_pretty"})


@dataclass(frozen=True)
class Include:
    """`_include=Source:param[:Target]` (and `_revinclude`, which has the same shape)."""

    source: str
    param: str
    target: str | None = None

    def text(self) -> str:
        return ":".join(p for p in (self.source, self.param, self.target) if p)


@dataclass(frozen=True)
class SortKey:
    param: str
    descending: bool

    def text(self) -> str:
        return f"-{self.param}" if self.descending else self.param


@dataclass(frozen=True)
class SearchRequest:
    """Everything a search asks for, typed; `params` is AND (list) of OR (values)."""

    resource_type: str
    params: tuple[ParsedParam, ...] = ()
    count: int = 20
    summary: str | None = None
    elements: tuple[str, ...] = ()
    includes: tuple[Include, ...] = ()
    sort: tuple[SortKey, ...] = ()
    total: str | None = None
    rev_includes: tuple[Include, ...] = ()
    unknown: tuple[str, ...] = ()

    def get(self, name: str) -> list[ParsedParam]:
        return [p for p in self.params if p.name == name]

    def canonical_pairs(self) -> list[tuple[str, str]]:
        """Normalised parameters actually used, sorted: the `self` link and cache keys."""
        pairs = sorted((p.key(), p.text()) for p in self.params)
        if self.sort:
            pairs.append(("_sort", ",".join(s.text() for s in self.sort)))
        pairs.extend(("_include", inc.text()) for inc in self.includes)
        pairs.extend(("_revinclude", inc.text()) for inc in self.rev_includes)
        if self.summary:
            pairs.append(("_summary", self.summary))
        if self.elements:
            pairs.append(("_elements", ",".join(self.elements)))
        if self.total:
            pairs.append(("_total", self.total))
        return pairs


@dataclass(frozen=True)
class SearchDeclaration:
    """What a provider supports, as the parser needs it."""

    resource_type: str
    params: Sequence[SearchParamSpec]
    includes: Sequence[str] = ()  # "Type:param" or "Type:param:Target"
    rev_includes: Sequence[str] = ()  # "OtherType:param" whose references point at this type
    default_count: int = 20
    max_count: int = 100

    def spec(self, name: str) -> SearchParamSpec | None:
        for spec in self.params:
            if spec.name == name:
                return spec
        return None


def _int_param(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSearchParameter(f"Parameter '{name}' must be an integer, not '{raw}'") from None
    if value < minimum:
        raise InvalidSearchParameter(f"Parameter '{name}' must be >= {minimum}, not {value}")
    return value


def _or_values(name: str, raw: str, limit: int) -> None:
    """Count the comma-separated (OR) values of one parameter before they are parsed.
    Cheap first: only a value with enough commas is split (escaped commas do not count)."""
    if raw.count(",") >= limit:
        check_count(f"Parameter '{name}' lists values", len(split_unescaped(raw, ",")), limit)


def parse_search(
    pairs: Sequence[tuple[str, str]],
    declaration: SearchDeclaration,
    *,
    strict: bool = False,
    max_items: int | None = None,
) -> SearchRequest:
    """Parse query pairs against a declaration. Unknown parameters are dropped (and
    listed in `unknown`) unless `strict`, where they are a 400 naming them.

    `max_items` bounds the number of parameters and of items in any one list (_elements
    names, _sort keys, OR values); None = the current request's FACADE_MAX_LIST_ITEMS.
    `_include`/`_revinclude` take one entry per parameter, so the parameter count bounds them."""
    limit = current_limits().max_list_items if max_items is None else max_items
    check_count("Search parameters", len(pairs), limit)
    params: list[ParsedParam] = []
    unknown: list[str] = []
    count = declaration.default_count
    summary: str | None = None
    elements: dict[str, None] = {}  # insertion-ordered set: duplicates dropped in O(1)
    includes: dict[Include, None] = {}
    rev_includes: dict[Include, None] = {}
    sort: list[SortKey] = []
    total: str | None = None
    supported = {
        "_include": {tuple(i.split(":")) for i in declaration.includes},
        "_revinclude": {tuple(i.split(":")) for i in declaration.rev_includes},
    }

    for raw_name, raw_value in pairs:
        name, _, modifier = raw_name.partition(":")
        base, dot, chain = name.partition(".")
        if raw_name in TRANSPORT_PARAMS:
            continue
        if raw_name == "_count":
            count = min(_int_param("_count", raw_value, 0), declaration.max_count)
        elif raw_name == "_summary":
            if raw_value not in SUMMARY_MODES:
                raise InvalidSearchParameter(
                    f"Parameter '_summary' takes one of {', '.join(SUMMARY_MODES)}, not '{raw_value}'"
                )
            summary = None if raw_value == "false" else raw_value
        elif raw_name == "_elements":
            names = raw_value.split(",")
            check_count("Parameter '_elements' lists names", len(names), limit)
            for element in names:
                element = element.strip()
                if not element or not element.replace("_", "a").isalnum():
                    raise InvalidSearchParameter(f"Parameter '_elements': '{element[:64]}' is not an element name")
                elements[element] = None
        elif raw_name == "_total":
            if raw_value not in TOTAL_MODES:
                raise InvalidSearchParameter(
                    f"Parameter '_total' takes one of {', '.join(TOTAL_MODES)}, not '{raw_value}'"
                )
            total = raw_value
        elif name in ("_include", "_revinclude") and modifier in ("", "iterate"):
            parts = tuple(raw_value.split(":"))
            if len(parts) not in (2, 3) or not all(parts):
                raise InvalidSearchParameter(f"Parameter '{name}': '{raw_value}' is not Type:param[:Target]")
            wanted = includes if name == "_include" else rev_includes
            if parts in supported[name] or (len(parts) == 3 and parts[:2] in supported[name]):
                wanted[Include(*parts)] = None
            else:
                unknown.append(f"{name}={raw_value}")
        elif raw_name == "_sort":
            keys = raw_value.split(",")
            check_count("Parameter '_sort' lists keys", len(keys), limit)
            for key in keys:
                desc = key.startswith("-")
                pname = key[1:] if desc else key
                spec = declaration.spec(pname)
                if spec is None or spec.type not in ("date", "string") or not spec.path:
                    unknown.append(f"_sort={key}")
                    continue
                sort.append(SortKey(pname, desc))
        else:
            spec = declaration.spec(base)
            if spec is None:
                unknown.append(raw_name)
                continue
            _or_values(raw_name[:64], raw_value, limit)
            params.append(parse_param(spec, modifier or None, raw_value, chain if dot else None))

    if strict and unknown:
        raise InvalidSearchParameter(
            "Unknown or unsupported search parameters (Prefer: handling=strict): " + ", ".join(unknown)
        )
    return SearchRequest(
        resource_type=declaration.resource_type,
        params=tuple(params),
        count=count,
        summary=summary,
        elements=tuple(elements),
        includes=tuple(includes),
        sort=tuple(sort),
        total=total,
        rev_includes=tuple(rev_includes),
        unknown=tuple(unknown),
    )


__all__ = ["Include", "SearchDeclaration", "SearchRequest", "SortKey", "parse_search", "escape"]
