"""The shape of core: folders by the flow, no import from a lower folder to a higher one, no import circle (lazy
imports inside functions count too), and the registry is a leaf."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
# lowest first: a module may import its own folder and the folders before it, never one after it
FOLDERS = ("inputs", "methods", "runtimes", "results", "engine")


def modules() -> dict[str, Path]:
    """'folder.module' (or 'module' for core's top level) -> its file."""
    return {".".join(p.relative_to(CORE).with_suffix("").parts): p
            for p in CORE.rglob("*.py") if p.stem != "__init__"}


def core_imports(path: Path, known: set[str]) -> set[str]:
    """The core modules `path` imports anywhere in the file (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module + ".").startswith("core."):
            base = node.module.removeprefix("core").removeprefix(".")
            for a in node.names:  # `from core.methods import prune` names a module; `from core.methods.spec import Spec` not
                name = f"{base}.{a.name}" if base else a.name
                found.add(name if name in known else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("core.") for a in node.names if a.name.startswith("core.")}
    return (found & known) - {".".join(path.relative_to(CORE).with_suffix("").parts)}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: core_imports(path, set(found)) for name, path in found.items()}


def level(module: str) -> int:
    """A folder's place in the flow; the CLI sits above every folder."""
    folder = module.split(".")[0]
    return FOLDERS.index(folder) if folder in FOLDERS else len(FOLDERS)


def test_core_is_in_folders_by_the_flow_each_saying_what_it_holds():
    assert {p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {*FOLDERS, "cli"}
    for folder in FOLDERS:
        doc = ast.get_docstring(ast.parse((CORE / folder / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) == 1, f"core/{folder}/__init__.py needs a one-line docstring"
    assert not [m for m in modules() if "." not in m], "every module of core sits in a folder"


def test_each_command_of_the_cli_reads_on_a_screen_or_two():
    for path in (CORE / "cli").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
                assert node.end_lineno - node.lineno < 60, f"{path.name}: {node.name} is longer than a screen"


def test_no_folder_imports_a_folder_after_it():
    upward = [f"{m} -> {n}" for m, deps in graph().items() for n in deps if level(n) > level(m)]
    assert not upward, "imports from a lower folder to a higher one: " + ", ".join(sorted(upward))


def test_the_architecture_test_sees_imports():
    g = graph()
    assert "inputs.data" in g["methods.prune"] and "methods.registry" in g["methods.prune"]
    assert "results.store" in g["engine.runner"]


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
    assert g["methods.registry"] == set()
    for method in ("prune", "quantize", "distill", "deploy"):
        assert "methods.registry" in g[f"methods.{method}"] and "methods.spec" not in g[f"methods.{method}"]
