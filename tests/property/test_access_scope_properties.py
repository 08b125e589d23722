"""Properties of SMART scope parsing (server/access/scopes.py)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from server.access.scopes import CONTEXTS, PERMISSIONS, V1_PERMISSIONS, ScopeSet, parse_scope

# every non-empty subsequence of "cruds", in order (the only valid v2 permission strings)
V2_LETTERS = ["".join(c) for n in range(1, 6) for c in itertools.combinations(PERMISSIONS, n)]

contexts = st.sampled_from(CONTEXTS)
types = st.one_of(
    st.just("*"),
    st.text(
        alphabet=st.characters(min_codepoint=65, max_codepoint=90) | st.characters(min_codepoint=97, max_codepoint=122),
        min_size=1,
        max_size=64,
    ),
)
scope_chars = st.sampled_from("patientusersystem/*.?=&cruds" + "PAZaz09 \t\n:|,-_") | st.characters()


@given(st.text(max_size=300))
def test_parse_scope_never_raises_on_arbitrary_text(text: str) -> None:
    scope = parse_scope(text)
    if scope is not None:
        assert scope.permissions <= frozenset(PERMISSIONS)


@given(st.text(alphabet=scope_chars, max_size=120))
def test_parse_scope_on_scope_shaped_text_gives_a_valid_scope_or_none(text: str) -> None:
    scope = parse_scope(text)
    if scope is not None:
        assert scope.context in CONTEXTS
        assert scope.permissions and scope.permissions <= frozenset(PERMISSIONS)
        assert scope.resource_type == "*" or scope.resource_type.isalpha()
        assert "?" not in text  # a query suffix never grants


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.lists(st.one_of(st.text(), st.integers(), st.none())),
        st.dictionaries(st.text(), st.text()),
    )
)
def test_scopeset_parse_never_raises_and_is_bounded(value: object) -> None:
    scopes = ScopeSet.parse(value)
    assert len(scopes.raw) <= 200
    assert all(isinstance(r, str) for r in scopes.raw)
    assert all(s.permissions <= frozenset(PERMISSIONS) for s in scopes.scopes)
    assert len(scopes.scopes) <= len(scopes.raw)


@given(contexts, types, st.sampled_from(V2_LETTERS))
def test_generated_v2_scopes_round_trip(context: str, rtype: str, letters: str) -> None:
    scope = parse_scope(f"{context}/{rtype}.{letters}")
    assert scope is not None
    assert (scope.context, scope.resource_type, scope.permissions) == (context, rtype, frozenset(letters))
    assert "".join(p for p in PERMISSIONS if p in scope.permissions) == letters
    # and through a token's scope claim, both forms
    for claim in (f"openid {context}/{rtype}.{letters}", [f"{context}/{rtype}.{letters}"]):
        parsed = ScopeSet.parse(claim)
        assert parsed.scopes == (scope,)


@given(contexts, types, st.sampled_from(sorted(V1_PERMISSIONS)))
def test_generated_v1_scopes_map_to_v2(context: str, rtype: str, suffix: str) -> None:
    scope = parse_scope(f"{context}/{rtype}.{suffix}")
    assert scope is not None
    assert scope.permissions == frozenset(V1_PERMISSIONS[suffix])


@given(contexts, types, st.permutations(list(PERMISSIONS)), st.integers(min_value=2, max_value=5))
def test_out_of_order_letters_never_parse(context: str, rtype: str, letters: list[str], n: int) -> None:
    text = "".join(letters[:n])
    in_order = "".join(sorted(text, key=PERMISSIONS.index))
    scope = parse_scope(f"{context}/{rtype}.{text}")
    if text == in_order:
        assert scope is not None and scope.permissions == frozenset(text)
    else:
        assert scope is None


@given(contexts, types, st.sampled_from(V2_LETTERS), st.text(max_size=40))
def test_any_query_suffix_grants_nothing(context: str, rtype: str, letters: str, query: str) -> None:
    assert parse_scope(f"{context}/{rtype}.{letters}?{query}") is None
