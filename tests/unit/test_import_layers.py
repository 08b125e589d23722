"""The import graph of server/, capability/ and mappings/: no cycles, and the layer rule
holds (issue 9; style item 21).

Every import counts: at module level, inside a function (a deferred import still couples
the two modules; it only hides the cycle from Python at import time) and under
`if TYPE_CHECKING:` (a type-only dependency is still a dependency). Relative imports are
resolved. An edge goes to the module an import names (`from a.b import c` goes to a.b.c
when c is a module, else to a.b); the package `__init__` files Python also runs on the
way hold only docstrings today, so they add no edges.

KNOWN_CYCLES and KNOWN_VIOLATIONS list what is wrong today. The tests fail on anything
new and on a listed entry that no longer exists, so both lists can only shrink.
"""

from __future__ import annotations

import ast
import textwrap
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "capability", "mappings")

# Each cycle is the set of modules of one strongly connected component of the graph.
KNOWN_CYCLES: dict[frozenset[str], str] = {}  # none left (issue 9 found two)

# (importer, imported) pairs that break a rule of LAYER_RULES today (none left: the NHS
# clients take RequestContext from server/request_context.py, below both layers).
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def _within(module: str, prefix: str) -> bool:
    """`module` is `prefix` or inside it; the empty prefix holds every module."""
    return not prefix or module == prefix or module.startswith(prefix + ".")


@dataclass(frozen=True)
class LayerRule:
    """Modules under `importer` import nothing under any of `forbidden`, except the
    (importer, imported) prefix pairs in `allowed`: exceptions the layering accepts, each
    explained where the rule is written."""

    name: str
    importer: str
    forbidden: tuple[str, ...]
    allowed: tuple[tuple[str, str], ...] = ()

    def broken_by(self, importer: str, imported: str) -> bool:
        return (
            _within(importer, self.importer)
            and any(_within(imported, f) for f in self.forbidden)
            and not any(_within(importer, a) and _within(imported, b) for a, b in self.allowed)
        )


# Every package under server/sources/ (one NHS source each).
SOURCE_PACKAGES = tuple(
    sorted(f"server.sources.{path.parent.name}" for path in (ROOT / "server" / "sources").glob("*/__init__.py"))
)

LAYER_RULES = (
    # mappings/ is the pure mapping engine and its data. It shares one pure function module
    # with the NHS clients: the NHS number system URI and Modulus-11 check
    # (mappings/transforms.py's check_nhs_number, server/sources/referrals/service_request_r4.py).
    LayerRule(
        "mappings imports nothing of server but the NHS number check and identifier systems, nothing of capability",
        "mappings",
        ("server", "capability"),
        allowed=(("mappings", "server.nhs.nhs_number"), ("mappings", "server.nhs.identifiers")),
    ),
    # server.access (tokens, scopes, roles, audit) is imported by server.fhir, server.pas,
    # server.providers (and by server.sources.gpconnect.client for the principal, capability for the
    # security description). It sits below providers and PAS, with one exception:
    # server/access/directory.py adapts the PAS store as the access policy's patient
    # directory (registration here is the relationship the façade can see for itself).
    LayerRule(
        "server.access imports nothing of server.providers or server.pas but the PAS store",
        "server.access",
        ("server.providers", "server.pas"),
        allowed=(("server.access.directory", "server.pas.store"),),
    ),
    # What every NHS client shares (HTTP client, resilience, auth) sits below everything but
    # the request context: it raises NHS-layer errors (UpstreamError, CallerInputError) and
    # server.providers.upstream_errors decides what the caller sees; only the auth wiring
    # reads the façade's settings.
    LayerRule(
        "server.nhs imports nothing of the FHIR, access, provider, PAS, cache or source layers, nor settings "
        "but in the auth wiring",
        "server.nhs",
        (
            "server.fhir",
            "server.access",
            "server.providers",
            "server.pas",
            "server.cache",
            "server.sources",
            "server.settings",
            "server.app",
        ),
        allowed=(("server.nhs.auth.profiles", "server.settings"),),
    ),
    # The NHS sources (server/sources/, issue 9): each package is one NHS API; the provider
    # contract and decorators in server.providers know no source.
    LayerRule("server.providers imports nothing of server.sources", "server.providers", ("server.sources",)),
    LayerRule(
        "server.fhir imports nothing of server.sources, server.pas or server.cache",
        "server.fhir",
        ("server.sources", "server.pas", "server.cache"),
    ),
    # A source package is imported by itself, by the one list of sources, and by the PAS
    # (its NHS number tracing asks PDS): never by another source or by the core, which
    # reads sources only through server.sources.registry.
    LayerRule(
        "a source package is imported only by itself, the registry and the PAS (PDS, for tracing)",
        "",
        SOURCE_PACKAGES,
        allowed=(
            *((pkg, pkg) for pkg in SOURCE_PACKAGES),
            ("server.sources.registry", "server.sources"),
            ("server.pas", "server.sources.pds"),
        ),
    ),
    # The composition root: only the CLI starts it (tests, outside this graph, drive it too).
    LayerRule(
        "nothing imports server.app but server.__main__",
        "",
        ("server.app",),
        allowed=(("server.__main__", "server.app"),),
    ),
)


@dataclass(frozen=True)
class Import:
    """One import statement's edge: where it is and how it runs."""

    line: int
    kind: str  # "module", "function" or "type-checking"


Graph = dict[str, dict[str, list[Import]]]


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the packages."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    """Every import in a module as (dotted name or None, relative level, imported names,
    line, kind)."""

    def __init__(self) -> None:
        self.found: list[tuple[str | None, int, tuple[str, ...], int, str]] = []
        self._context: list[str] = []

    def _kind(self) -> str:
        if "type-checking" in self._context:
            return "type-checking"
        return "function" if "function" in self._context else "module"

    def _inside(self, context: str, nodes: Iterable[ast.AST]) -> None:
        self._context.append(context)
        for node in nodes:
            self.visit(node)
        self._context.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._inside("function", node.body)  # decorators and defaults run at definition time

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._inside("type-checking", node.body)
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, 0, (), node.lineno, self._kind()))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = tuple(alias.name for alias in node.names)
        self.found.append((node.module, node.level, names, node.lineno, self._kind()))


def _nearest_module(name: str, modules: Mapping[str, Path]) -> str | None:
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path, packages: Iterable[str]) -> Graph:
    """importer -> imported -> the import statements, between project modules only."""
    modules = project_modules(root, packages)
    graph: Graph = {name: {} for name in modules}
    for name, path in modules.items():
        collector = _ImportCollector()
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for module, level, names, line, kind in collector.found:
            if level:  # from . import x, from ..a import b: relative to this module's package
                anchor = package.split(".")[: len(package.split(".")) - (level - 1)]
                base = ".".join(anchor + ([module] if module else []))
            else:
                base = module or ""
            candidates = [f"{base}.{n}" for n in names if f"{base}.{n}" in modules] if names else []
            if len(candidates) < len(names) or not names:
                candidates.append(base)
            for candidate in candidates:
                target = _nearest_module(candidate, modules)
                if target is not None and target != name:
                    graph[name].setdefault(target, []).append(Import(line, kind))
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The components that hold a cycle (two or more modules, or one importing itself);
    Tarjan's algorithm, iterative so a deep graph cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cyclic: list[frozenset[str]] = []
    successors = {node: list(targets) for node, targets in graph.items()}
    for start in successors:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = successors.get(node, [])
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:  # back in the parent: pass the low link up
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors.get(node, []):
                    cyclic.append(frozenset(component))
    return cyclic


def cycle_path(graph: Mapping[str, Iterable[str]], component: frozenset[str]) -> list[str]:
    """A shortest cycle through the component's first module (by name): [a, b, ..., a]."""
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in graph.get(node, []):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target in component and target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"{sorted(component)} holds no cycle through {start}")


def describe_cycle(graph: Graph, path: list[str]) -> str:
    steps = [path[0]]
    for importer, imported in zip(path, path[1:]):
        how = ", ".join(
            f"line {i.line}" + ("" if i.kind == "module" else f" ({i.kind})") for i in graph[importer][imported]
        )
        steps.append(f"-> {imported}  [{importer} {how}]")
    return "\n      ".join(steps)


def layer_violations(graph: Graph) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) -> the names of the rules the edge breaks."""
    broken: dict[tuple[str, str], list[str]] = {}
    for importer, targets in graph.items():
        for imported in targets:
            for rule in LAYER_RULES:
                if rule.broken_by(importer, imported):
                    broken.setdefault((importer, imported), []).append(rule.name)
    return broken


@cache
def _project_graph() -> Graph:
    return import_graph(ROOT, PACKAGES)


def test_no_import_cycle_but_the_known_ones() -> None:
    graph = _project_graph()
    found = set(strongly_connected(graph))
    new = [
        f"{sorted(c)}, for example:\n    {describe_cycle(graph, cycle_path(graph, c))}"
        for c in sorted(found - set(KNOWN_CYCLES), key=sorted)
    ]
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not new, "import cycle(s) not in KNOWN_CYCLES (break them: the list may only shrink):\n  " + "\n  ".join(new)
    assert not gone, f"cycle(s) in KNOWN_CYCLES no longer exist (or changed): remove or update them: {gone}"


def test_layer_rule_holds_but_for_the_known_violations() -> None:
    graph = _project_graph()
    broken = layer_violations(graph)
    new = [
        f"{a} -> {b} (line {', '.join(str(i.line) for i in graph[a][b])}): {'; '.join(rules)}"
        for (a, b), rules in sorted(broken.items())
        if (a, b) not in KNOWN_VIOLATIONS
    ]
    gone = sorted(edge for edge in KNOWN_VIOLATIONS if edge not in broken)
    assert not new, "layer rule broken:\n  " + "\n  ".join(new)
    assert not gone, f"KNOWN_VIOLATIONS lists imports that no longer break a rule: remove them: {gone}"


def test_the_graph_sees_deferred_and_type_only_imports() -> None:
    """The real graph holds edges of every kind (module, function-level, TYPE_CHECKING): the parser
    did not silently miss function-level or TYPE_CHECKING imports."""
    graph = _project_graph()
    assert {i.kind for i in graph["server.request_context"]["server.access.quota"]} == {"type-checking"}
    assert {i.kind for i in graph["server.__main__"]["server.sandbox.app"]} == {"function"}
    assert {i.kind for i in graph["server.providers.pas_clinical"]["server.pas.service"]} == {"module"}
    assert "server.access.policy" in graph["server.fhir.handlers"]


def test_cycle_finder_on_a_small_graph() -> None:
    graph = {
        "a": ["b"],
        "b": ["c"],
        "c": ["a", "d"],  # a -> b -> c -> a
        "d": ["e"],
        "e": [],  # acyclic tail
        "f": ["f"],  # imports itself
        "g": ["h"],
        "h": ["g", "a"],  # g <-> h, reaching into the first cycle
    }
    assert set(strongly_connected(graph)) == {frozenset("abc"), frozenset("f"), frozenset("gh")}
    assert cycle_path(graph, frozenset("abc")) == ["a", "b", "c", "a"]
    assert cycle_path(graph, frozenset("gh")) == ["g", "h", "g"]
    assert strongly_connected({"a": ["b"], "b": ["c"], "c": []}) == []


def test_cycle_finder_survives_a_long_chain() -> None:
    chain = {str(i): [str(i + 1)] for i in range(5000)}
    chain["5000"] = ["0"]
    assert strongly_connected(chain) == [frozenset(chain)]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_graph_resolves_every_import_form(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": """
            import os
            import pkg.b
            from . import c
            from .sub import d as renamed
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pkg.e import Thing
            def later():
                from .sub.d import name
        """,
            "pkg/b.py": "",
            "pkg/c.py": "from pkg import a\n",
            "pkg/e.py": "class Thing: ...\n",
            "pkg/sub/__init__.py": "from .. import b\n",
            "pkg/sub/d.py": "from ..e import Thing\nname = 1\n",
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    edges = {(a, b): sorted(i.kind for i in imports) for a, targets in graph.items() for b, imports in targets.items()}
    assert edges == {
        ("pkg.a", "pkg.b"): ["module"],
        ("pkg.a", "pkg.c"): ["module"],
        ("pkg.a", "pkg.sub.d"): ["function", "module"],
        ("pkg.a", "pkg.e"): ["type-checking"],
        ("pkg.c", "pkg.a"): ["module"],
        ("pkg.sub", "pkg.b"): ["module"],
        ("pkg.sub.d", "pkg.e"): ["module"],
    }
    cycles = strongly_connected(graph)
    assert cycles == [frozenset({"pkg.a", "pkg.c"})]
    assert describe_cycle(graph, cycle_path(graph, cycles[0])) == (
        "pkg.a\n      -> pkg.c  [pkg.a line 4]\n      -> pkg.a  [pkg.c line 1]"
    )


def test_layer_rule_catches_a_violation() -> None:
    graph: Graph = {
        "mappings.engine": {"server.nhs.nhs_number": [Import(1, "module")], "server.settings": [Import(2, "module")]},
        "server.nhs.client": {"server.fhir.handlers": [Import(3, "function")]},
        "server.__main__": {"server.app": [Import(4, "function")]},
        "server.access.directory": {
            "server.pas.store": [Import(5, "module")],
            "server.pas.service": [Import(6, "module")],
        },
        "server.access.audit_trail": {"server.pas.store": [Import(8, "module")]},  # only directory may
        "capability.statement": {"server.app": [Import(7, "module")]},
    }
    assert layer_violations(graph) == {
        ("mappings.engine", "server.settings"): [LAYER_RULES[0].name],
        ("server.nhs.client", "server.fhir.handlers"): [LAYER_RULES[2].name],
        ("server.access.directory", "server.pas.service"): [LAYER_RULES[1].name],
        ("server.access.audit_trail", "server.pas.store"): [LAYER_RULES[1].name],
        ("capability.statement", "server.app"): [next(r.name for r in LAYER_RULES if r.forbidden == ("server.app",))],
    }
