"""The set-up contract: pins agree, the two commands exist, CI calls make test."""

import re
import tomllib

import yaml

from conftest import REPO


def _pins(lines):
    return {re.split("[=<>]", l)[0].lower(): l.replace(" ", "") for l in lines if not l.startswith("-e")}


def test_pyproject_and_environment_yml_agree():
    proj = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ours = _pins(proj["dependencies"] + proj["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip) == ours
    assert "python=3.11" in env["dependencies"]


def test_required_pins():
    proj = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = _pins(proj["dependencies"])
    assert deps["torch"] == "torch==2.14.1" and deps["torchvision"] == "torchvision==0.29.1"
    assert deps["opacus"] == "opacus==1.6.0"
    assert re.fullmatch(r"jupyter-book==1\.\S+", deps["jupyter-book"])
    assert proj["scripts"]["dphpe"] == "dphpe_core.cli:main"


def test_two_commands_and_ci():
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^book: ", make, re.M) and re.search(r"^test: ", make, re.M)
    readme = (REPO / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    ignored = (REPO / ".gitignore").read_text().split()
    assert {".venv/", "_build/", "results/*", "!results/embedded/"} <= set(ignored)


def test_public_api_names():
    import dphpe_core
    for name in ("make_config", "build_data", "evaluate_mpii", "Config", "DataBundle", "PRESETS"):
        assert name in dphpe_core.__all__ and hasattr(dphpe_core, name)


def _package_imports() -> dict[str, set[str]]:
    """dphpe_core module -> the dphpe_core modules it imports anywhere in its text (top level or inside
    a function: a lazy import is still a dependency)."""
    import ast
    pkg = REPO / "dphpe_core"
    names = {p.stem for p in pkg.glob("*.py")}
    graph = {}
    for path in pkg.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps |= {a.name for a in node.names if a.name in names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dphpe_core."):
                deps.add(node.module.split(".")[1])
        graph[path.stem] = deps - {path.stem}
    return graph


def test_the_package_has_no_import_circle():
    graph = _package_imports()
    state: dict[str, int] = {}

    def visit(node, trail):
        if state.get(node) == 1:
            raise AssertionError("import circle: " + " -> ".join(trail[trail.index(node):] + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            visit(dep, trail + [node])
        state[node] = 2

    for module in sorted(graph):
        visit(module, [])
    assert not graph["model"] & {"data", "train", "loop", "start"}, "model.py imports neither data nor training"


def test_the_readmes_architecture_lists_every_module_and_each_fits_in_a_sitting():
    """The README's layout is the code's: every module of the package named there, none that is gone, and
    each module of one concept within DESIGN's 300 lines."""
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("## Architecture"):]
    block = block[block.index("dphpe_core/"):block.index("notebooks/ ")]
    listed = set(re.findall(r"^  (\w+\.py)\b", block, re.M))
    modules = {p.name for p in (REPO / "dphpe_core").glob("*.py")} - {"__init__.py"}
    assert listed == modules, (f"in the package, not the README: {sorted(modules - listed)}; "
                               f"in the README, not the package: {sorted(listed - modules)}")
    long = {p.name: n for p in (REPO / "dphpe_core").glob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"modules over 300 lines: {long}"
