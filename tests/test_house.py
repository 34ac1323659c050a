"""The house rules CI checks: small modules, small packages, thin commands, imports pointing down.

The stage layering itself is import-linter's contract (``[tool.importlinter]`` in
pyproject.toml); this test runs it, so the README's test command checks it too.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "probe"
MAX_MODULE_LINES = 450
MAX_PACKAGE_MODULES = 10
MAX_CLI_LINES = 200
MAX_CLI_STAGES = 2
STAGES = ("data", "features", "heads", "research", "serve", "finetune", "interventions", "report")


def _modules(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.py") if path.name != "__init__.py")


def test_no_module_is_over_the_line_limit():
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    long = {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_package_holds_too_many_modules():
    crowded = {
        str(folder.relative_to(ROOT)): len(_modules(folder))
        for folder in [PACKAGE, *PACKAGE.rglob("*")]
        if (folder / "__init__.py").is_file()
        and folder != PACKAGE
        and len(_modules(folder)) > MAX_PACKAGE_MODULES
    }
    assert not crowded, f"packages over {MAX_PACKAGE_MODULES} modules: {crowded}"


def _stages_imported(path: Path) -> set[str]:
    stages = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "probe" and parts[1] in STAGES:
                stages.add(parts[1])
    return stages


def test_commands_are_thin():
    heavy = {}
    for path in _modules(PACKAGE / "cli"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        stages = _stages_imported(path)
        if lines > MAX_CLI_LINES or len(stages) > MAX_CLI_STAGES:
            heavy[path.name] = (lines, sorted(stages))
    assert not heavy, f"CLI modules over {MAX_CLI_LINES} lines or {MAX_CLI_STAGES} stages: {heavy}"


def test_stage_imports_point_down():
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is missing: install the dev extra (import-linter)")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_the_contract_catches_an_upward_import(tmp_path):
    """The checker is not vacuous: a heads module importing research breaks the contract."""
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is missing: install the dev extra (import-linter)")
    copy = tmp_path / "tree"
    shutil.copytree(PACKAGE, copy / "probe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "probe" / "heads" / "upward.py").write_text("import probe.research.sweep\n")
    done = subprocess.run(
        [lint, "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(copy), "PATH": ""},
    )
    assert done.returncode != 0 and "probe.heads.upward" in done.stdout


# --- no broad except below the command line ---------------------------------------------------

BROAD = {"Exception", "BaseException"}
# (module, function) -> why a broad handler must stay there. Each one re-raises what it does
# not mean to handle, or hands the exception to another thread that raises it.
BROAD_ALLOWED = {
    ("probe/serve/export.py", "load"): "tokenizers raises a bare Exception (re-raises others)",
    ("probe/features/models/loading.py", "_converted_gguf_dir"): "the same, for a GGUF tokenizer",
    ("probe/features/distributed.py", "start_ray"): "Ray's start-up timeout is a bare Exception",
    ("probe/features/device.py", "work"): "the prefetch thread hands any exception to the reader",
    ("probe/features/device.py", "_run"): "the writer thread hands any exception to submit()",
}


def broad_handlers(source: str) -> list[tuple[int, str]]:
    """(line, enclosing function) of every ``except``, ``except Exception`` or ``except
    BaseException`` (alone or in a tuple) in ``source``."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name
            if isinstance(child, ast.ExceptHandler):
                caught = child.type
                kinds = caught.elts if isinstance(caught, ast.Tuple) else [caught]
                if caught is None or any(getattr(k, "id", None) in BROAD for k in kinds):
                    found.append((child.lineno, function))
            visit(child, name)

    visit(ast.parse(source), "<module>")
    return found


def test_no_broad_except_below_the_command_line():
    """A library failure is caught by its own types: a broad handler below ``probe/cli`` would
    turn a bug (TypeError, AttributeError, KeyError...) into a wrong one-line message or a
    lost row. The CLI (``fail_cleanly``) is the one place that decides what a user sees."""
    broad = []
    for path in PACKAGE.rglob("*.py"):
        module = str(path.relative_to(ROOT))
        if module.startswith("probe/cli/"):
            continue
        for line, function in broad_handlers(path.read_text(encoding="utf-8")):
            if (module, function) not in BROAD_ALLOWED:
                broad.append(f"{module}:{line} ({function})")
    assert not broad, f"broad except below probe/cli (name the types it meant): {broad}"


def test_the_broad_except_check_is_not_vacuous():
    source = (
        "def fit():\n    try:\n        pass\n    except (ValueError, Exception):\n        pass\n"
        "def read():\n    try:\n        pass\n    except:\n        pass\n"
        "def narrow():\n    try:\n        pass\n    except (OSError, ValueError):\n        pass\n"
    )
    assert broad_handlers(source) == [(4, "fit"), (9, "read")]


# --- one import direction between any two modules --------------------------------------------


def _module_imports() -> dict[str, set[str]]:
    """module -> the probe modules it imports anywhere (function-level imports too).
    ``from pkg import sub`` counts as importing ``pkg.sub``; a module importing its own
    package (``from probe.heads.solver import curvature`` in ``solver.path``) is not a cycle."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if "assets" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    found = {}
    for name, path in modules.items():
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                subs = [sub for sub in subs if sub in modules]
                names.update(subs if len(subs) == len(node.names) else [node.module, *subs])
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[name] = {
            other
            for other in names
            if other in modules and other != name and not name.startswith(other + ".")
        }
    return found


def test_no_two_modules_import_each_other():
    """A cycle (a imports b, b imports a, directly or round a loop) means neither can be
    read, tested or moved alone: a new task or probe family must slot in below its users."""
    import graphlib

    try:
        graphlib.TopologicalSorter(_module_imports()).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"modules import each other: {' -> '.join(error.args[1])}")


def test_the_cycle_check_is_not_vacuous():
    import graphlib

    imports = _module_imports()
    imports["probe.research.fitting"].add("probe.research.sweep")  # sweep imports fitting
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(imports).prepare()
