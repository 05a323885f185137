"""The import rules of docs/architecture.md, read from the source with `ast` (nothing is imported).

- No module outside course_lib/dev/ imports course_lib.dev: students' code never needs author tools.
- No import cycle among course_lib's modules at module level.
- Layers: a module imports only from lower layers (function-level imports included, so a cycle
  cannot hide inside a function), or from its own package; commands (`cli`, `__main__`, the
  prefetch command) sit above every library module.
- Kernel names and the course root come from course_lib.paths, never from string literals.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import paths
from course_lib.__main__ import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_lib"

# Lower numbers are lower layers; a module may import from a strictly lower layer, or from its own package.
LAYERS = {
    "errors": 0,
    "paths": 0,
    "units": 0,  # foundation: no course_lib imports
    "cgroups": 1,
    "shapes": 1,
    "checks": 1,
    "data": 1,
    "hints": 1,  # facts and checks, no TensorFlow at import
    "devices": 2,
    "classifier": 2,  # TensorFlow's runtime and the course's classifier
    "bench": 3,
    "environment": 3,
    "formats": 3,
    "memory": 3,  # the toolkit the notebooks teach with
    "serving": 3,
    "models": 4,  # loads local files through formats
    "workspace": 5,  # students' folder
    "lab": 6,
    "progress": 6,
    "commands": 6,  # students' entry points and command lines
    "dev": 7,  # author and instructor tools: may import anything
    "hub": 8,  # the class deployment (JupyterHub): instructor tooling on top of dev
}
COMMAND_MODULES = {"cli", "__main__", "prefetch", "benchmark"}  # the last part of a command module's name


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def group(module: str) -> str:
    """The top-level part of course_lib a module belongs to: 'memory' for course_lib.memory.fit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    if module.split(".")[-1] in COMMAND_MODULES and group(module) not in ("dev", "hub"):
        return LAYERS["commands"]
    if module == "course_lib":
        return LAYERS["cgroups"]  # the package's own __init__: re-exports from the foundation only
    return LAYERS[group(module)]


def imports(module: str, module_level_only: bool) -> set[str]:
    """The course_lib modules `module` imports (resolved to modules, not names inside them)."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    found: set[str] = set()

    def add(name: str) -> None:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("course_lib"):
                        add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    pytest.fail(f"{module} uses a relative import: course_lib imports by absolute name")
                if node.module and node.module.split(".")[0] == "course_lib":
                    for alias in node.names:
                        full = f"{node.module}.{alias.name}"
                        add(full if full in MODULES else node.module)
            if module_level_only:
                if isinstance(node, (ast.If, ast.Try, ast.With)):
                    visit(ast.iter_child_nodes(node))
                elif isinstance(node, ast.ExceptHandler):
                    visit(node.body)
            else:
                visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return found


def test_every_module_has_a_layer():
    unknown = sorted(
        m for m in MODULES if m != "course_lib" and group(m) not in LAYERS and m.split(".")[-1] not in COMMAND_MODULES
    )
    assert unknown == [], f"give these a layer in LAYERS (and in docs/architecture.md): {unknown}"


def test_no_module_outside_dev_imports_dev():
    offenders = {
        module: sorted(i for i in imports(module, module_level_only=False) if group(i) == "dev")
        for module in MODULES
        if group(module) not in ("dev", "hub")
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_no_import_cycles_at_module_level():
    graph = {module: imports(module, module_level_only=True) for module in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_modules_import_only_from_lower_layers_or_their_own_package():
    wrong = []
    for module in MODULES:
        for imported in imports(module, module_level_only=False):
            same_package = group(imported) == group(module) and group(module) != "__init__"
            if not same_package and layer(imported) >= layer(module):
                wrong.append(f"{module} (layer {layer(module)}) imports {imported} (layer {layer(imported)})")
    assert wrong == [], "\n".join(wrong)


def test_the_package_imports_stay_cheap():
    """`import course_lib` and the library's __init__ files import no command module."""
    for module in MODULES:
        if MODULES[module].name == "__init__.py" and module != "course_lib.dev":
            commands = {i for i in imports(module, True) if i.split(".")[-1] in {"cli", "__main__"}}
            assert commands == set(), f"{module} imports command modules {commands}"


def test_every_command_lives_outside_dev():
    for command, (module, function, _) in COMMANDS.items():
        assert module in MODULES and group(module) != "dev", f"`python -m course_lib {command}` -> {module}"
        tree = ast.parse(MODULES[module].read_text())
        assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, (command, function)


KERNEL_LITERALS = {paths.KERNEL_NAME, paths.GRADING_KERNEL_NAME}
# Strings equal to a kernel name that are not the kernel: the default grading course folder.
NOT_KERNELS = {"course_lib.dev.classroom": "the default course directory ~/tf-course-grading is a folder"}


def test_kernel_names_come_from_paths():
    literal = []
    for module, path in MODULES.items():
        if module in ("course_lib.paths", *NOT_KERNELS):
            continue
        literal.extend(
            f"{module}:{node.lineno} {node.value!r}"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and node.value in KERNEL_LITERALS
        )
    assert literal == [], "use course_lib.paths.KERNEL_NAME / GRADING_KERNEL_NAME instead of: " + ", ".join(literal)


def test_files_outside_python_name_the_same_kernels():
    assert re.search(rf"^KERNEL := {paths.KERNEL_NAME}$", (ROOT / "Makefile").read_text(), re.M)
    for file in ("binder/postBuild", "Dockerfile"):
        text = (ROOT / file).read_text()
        assert f"--name {paths.KERNEL_NAME} " in text and f'"{paths.KERNEL_DISPLAY_NAME}"' in text, file
    config = (ROOT / "nbgrader_config.py").read_text()
    names = set(re.findall(r"kernel_name = \"([^\"]+)\"", config))
    assert names == {paths.GRADING_KERNEL_NAME}, names


def test_repo_root_has_one_home():
    offenders = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == "REPO_ROOT" for t in targets) and module != "course_lib.paths":
                offenders.append(module)
    assert offenders == [], f"import REPO_ROOT from course_lib.paths instead of defining it in {offenders}"


def test_importing_the_library_imports_no_tensorflow():
    """Rule 5: TensorFlow and Keras load inside the functions that need them, so doctor runs without them."""
    # The server's modules run in the server's process, which needs TensorFlow anyway; `course_lib.serving`
    # itself stays cheap (its names load on first use).
    library = [
        m
        for m in MODULES
        if group(m) != "dev" and not m.endswith("__main__") and not m.startswith("course_lib.serving.")
    ]
    probe = (
        f"import sys; [__import__(m) for m in {library!r}]; print(sorted({{'tensorflow', 'keras'}} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
