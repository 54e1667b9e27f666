"""The package's layout: no import cycle among seqclf modules, and private APIs only via compat.

Import graph: an edge A -> B for each `import B` / `from B import name` (and `from pkg import
B` where B is a submodule) in A. Two graphs are checked:

* module-level imports (statements outside any function body, `if`/`try` blocks included):
  these run when A is imported, so a cycle among them makes import order matter. None allowed.
* all imports, function-level (lazy) ones included: a lazy import does not fail at import time,
  but a cycle through one still means two modules depend on each other. None allowed either,
  except the pairs listed in `LAZY_CYCLES_ALLOWED` with the reason.

Importing `a.b.c` also runs the `__init__` of `a` and `a.b`; those parent-package edges are not
counted (every package's `__init__` re-exports its submodules, which would make each a cycle).
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "seqclf"

#: Lazy (function-level) cycles still allowed, as frozensets of the modules in the cycle.
LAZY_CYCLES_ALLOWED = {}

#: `from seqclf.X import _name` still allowed outside seqclf/_compat.py: (file, module, name).
PRIVATE_IMPORTS_ALLOWED = set()


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path, modules):
    """`[(target module, module_level)]` of the seqclf modules imported by the file at `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []

    def visit(node, module_level):
        for child in ast.iter_child_nodes(node):
            inner = module_level and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name in modules:
                        found.append((alias.name, module_level))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:
                        found.append((sub, module_level))
                    elif base in modules:
                        found.append((base, module_level))
            visit(child, inner)

    visit(tree, True)
    return [(t, level) for t, level in found if t != here]


def _graph(module_level_only):
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for target, level in _imports(path, modules):
            if level or not module_level_only:
                graph[name].add(target)
    return graph


def _cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_graph_is_read_and_a_cycle_would_be_found():
    # Guards against a vacuous pass: an empty graph has no cycle either.
    graph = _graph(module_level_only=False)
    assert len(graph) > 40 and sum(len(targets) for targets in graph.values()) > 100
    assert "seqclf.models.text_classifier" in graph["seqclf.training"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_cycle_at_module_level():
    cycles = _cycles(_graph(module_level_only=True))
    assert cycles == [], [sorted(c) for c in cycles]


def test_no_import_cycle_through_lazy_imports():
    cycles = [c for c in _cycles(_graph(module_level_only=False)) if c not in LAZY_CYCLES_ALLOWED]
    assert cycles == [], [sorted(c) for c in cycles]


def _python_files():
    for folder in ("seqclf", "tests", "pipelines", "bench"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_private_names_are_imported_only_through_compat():
    compat = PACKAGE / "_compat.py"
    modules = _modules()
    found = []
    for path in _python_files():
        if path == compat:
            continue
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seqclf"):
                for alias in node.names:
                    # A private module of seqclf (`from seqclf import _io`) holds public names.
                    submodule = f"{node.module}.{alias.name}" in modules
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    private = private and not submodule
                    if private and (rel, node.module, alias.name) not in PRIVATE_IMPORTS_ALLOWED:
                        found.append(f"{rel}:{node.lineno} from {node.module} import {alias.name}")
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.startswith(("tensorflow.python", "keras.src")):
                    found.append(f"{rel}:{node.lineno} import {name}")
    assert found == [], "private Keras/TF/seqclf names belong in seqclf/_compat.py:\n" + "\n".join(
        found
    )
