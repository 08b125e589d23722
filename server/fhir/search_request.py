"""A whole search request: declared parameters parsed, result parameters (_count,
_summary, _elements, _include, _revinclude, _sort, _total) read, unknown ones noted.

Pure: takes the merged query pairs and a provider's declarations, returns a
SearchRequest or raises InvalidSearchParameter naming the parameter.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_params import ParsedParam, SearchParamSpec, escape, parse_param

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


def parse_search(
    pairs: Sequence[tuple[str, str]],
    declaration: SearchDeclaration,
    *,
    strict: bool = False,
) -> SearchRequest:
    """Parse query pairs against a declaration. Unknown parameters are dropped (and
    listed in `unknown`) unless `strict`, where they are a 400 naming them."""
    params: list[ParsedParam] = []
    unknown: list[str] = []
    count = declaration.default_count
    summary: str | None = None
    elements: list[str] = []
    includes: list[Include] = []
    rev_includes: list[Include] = []
    sort: list[SortKey] = []
    total: str | None = None
    supported = {"_include": {tuple(i.split(":")) for i in declaration.includes},
                 "_revinclude": {tuple(i.split(":")) for i in declaration.rev_includes}}

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
            for element in raw_value.split(","):
                element = element.strip()
                if not element or not element.replace("_", "a").isalnum():
                    raise InvalidSearchParameter(f"Parameter '_elements': '{element}' is not an element name")
                if element not in elements:
                    elements.append(element)
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
                include = Include(*parts)
                if include not in wanted:
                    wanted.append(include)
            else:
                unknown.append(f"{name}={raw_value}")
        elif raw_name == "_sort":
            for key in raw_value.split(","):
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
            params.append(parse_param(spec, modifier or None, raw_value, chain if dot else None))

    if strict and unknown:
        raise InvalidSearchParameter(
            "Unknown or unsupported search parameters (Prefer: handling=strict): "
            + ", ".join(unknown)
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
