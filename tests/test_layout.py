"""The package's shape, as its own tools see it: layers, imports, where the environment is read, the test env."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "yolowatch"
# Optional extras may be imported inside functions (the light install runs without them); nothing else may.
# uvloop comes with uvicorn[standard] everywhere but Windows (and PyPy), so it is imported where it is used.
OPTIONAL_EXTRAS = {
    "scipy", "ultralytics", "torch", "yaml", "matplotlib", "uvloop", "pynvml", "apprise", "opentelemetry",
}  # fmt: skip
# Modules that may touch os.environ besides config.py: ultralytics' own switches (YOLO_OFFLINE, ...), which are
# not yolowatch settings.
ENVIRONMENT_READERS = {"config.py", "yolo/offline.py", "demo/train.py"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PACKAGE)), ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


def test_imports_keep_the_documented_layers() -> None:
    """lint-imports checks the contracts in pyproject.toml: layers, the light install, no cycles anywhere."""
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "4 kept, 0 broken" in result.stdout


def test_function_local_imports_are_only_the_optional_extras() -> None:
    """An import inside a function is there because the light install lacks its package, never to dodge a
    circle or to import the standard library late."""
    found = []
    for name, tree in _modules():
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    found += [(name, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    found.append((name, node.module))
    assert found, "the scan found nothing: it is broken"
    assert [(name, module) for name, module in found if module.split(".")[0] not in OPTIONAL_EXTRAS] == []


def test_only_config_reads_yolowatch_settings_from_the_environment() -> None:
    """Every YOLOWATCH_* setting goes through Settings; no module reads os.environ or getenv behind its back."""
    readers = set()
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.add(name)
    assert readers == ENVIRONMENT_READERS
    for name in ENVIRONMENT_READERS - {"config.py"}:
        assert "YOLOWATCH_" not in (PACKAGE / name).read_text()


def test_the_test_command_never_touches_the_quick_start_environment() -> None:
    """Regression (./scripts/test reinstalled the package into the .venv that the quick start's serve runs from,
    and the running server lost its dashboard files): the test command builds an environment of its own, which
    git and Docker ignore."""
    readme = (ROOT / "README.md").read_text()
    script = (ROOT / "scripts" / "test").read_text()
    quick_start = re.search(
        r"python3 -m venv (\S+) && \1/bin/pip install \"\.\[yolo\]\" && \1/bin/yolowatch serve", readme
    )
    assert quick_start, "the README's quick start has changed shape: update this test"
    test_env = re.search(r"^VENV=(\S+)$", script, re.MULTILINE)
    assert test_env, "scripts/test names its environment in one VENV= line"
    assert Path(test_env.group(1)).resolve() != Path(quick_start.group(1)).resolve()
    assert "-m pip install" in script and '"$VENV"/bin/python -m pip install' in script
    assert "python3 -m venv .venv " not in script and ".venv/bin/" not in script.replace(test_env.group(1), "")
    name = test_env.group(1).rstrip("/")
    for ignore_file in (".gitignore", ".dockerignore"):
        assert {name, f"{name}/"} & set((ROOT / ignore_file).read_text().split()), ignore_file
