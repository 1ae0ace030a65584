"""The shape of core: no import circle (lazy imports inside functions count too), and the registry is a leaf."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"


def core_imports(path: Path) -> set[str]:
    """The core modules `path` imports anywhere in the file (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "core":
                found |= {a.name for a in node.names if (CORE / f"{a.name}.py").exists()}
            elif node.module.startswith("core."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("core.")}
    return found - {path.stem}


def graph() -> dict[str, set[str]]:
    return {p.stem: core_imports(p) for p in CORE.glob("*.py") if p.stem != "__init__"}


def test_core_has_no_import_circle():
    g, done, path = graph(), set(), []

    def visit(node):
        if node in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(g.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(g):
        visit(node)


def test_the_registry_is_a_leaf_that_every_method_imports():
    g = graph()
    assert g["registry"] == set()
    for method in ("prune", "quantize", "distill", "deploy"):
        assert "registry" in g[method] and "spec" not in g[method]
