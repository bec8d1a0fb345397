"""The layout keeps its promises (docs/architecture.md): small files, one-way imports with no cycle,
tasks that know their pattern and never a dataset, one task contract with shared argument names."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("zoo", "datamodules")
MAX_LINES = 600
# What a task may import from datamodules: the data *formats*, never a data set.
FORMAT_MODULES = {"datamodules.tokenizers", "datamodules.images", "datamodules.video_io", "datamodules.loaders"}


def modules() -> Dict[str, Path]:
    """Every module of the zoo's packages: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: Dict[str, Path]) -> Iterator[str]:
    """The zoo modules that ``name`` imports anywhere in its file (function-level imports too)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import zoo.tasks.base` names a module; `x.y.attr` does not
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph() -> Dict[str, Set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_over_600_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in modules().values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycle_anywhere():
    graph = import_graph()
    # The top-level `zoo` package re-exports the public API from every layer; nothing imports it back.
    assert not [m for m, targets in graph.items() if "zoo" in targets], "import the module, not the `zoo` package"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_tasks_import_no_dataset_and_lower_layers_import_no_task():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("zoo.tasks"):
            data = {t for t in targets if t.startswith("datamodules")}
            assert data <= FORMAT_MODULES, f"{name} imports a dataset module: {sorted(data - FORMAT_MODULES)}"
        if name.startswith("datamodules"):
            assert not [t for t in targets if t.startswith("zoo.")], f"{name} imports the zoo (datamodules never import models)"
        if name.startswith(
            (
                "zoo.hub",
                "zoo.cells",
                "zoo.kernels",
                "zoo.recurrent",
                "zoo.attention",
                "zoo.decoding",
                "zoo.encoders",
                "zoo.sequences",
                "zoo.viz",
                "zoo.metrics",
            )
        ):
            upward = [t for t in targets if t.startswith(("zoo.tasks", "zoo.cli"))]
            assert not upward, f"{name} imports a layer above it: {upward}"


def task_classes() -> List[type]:
    from zoo.tasks.base import TaskModule

    shipped = {f"zoo.tasks.{info.name}" for info in pkgutil.iter_modules([str(REPO / "zoo" / "tasks")])}
    for name in shipped:
        importlib.import_module(name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    # only the repository's own task modules: a test may add a toy task of its own (tests/test_add_a_task.py)
    found = {c for c in subclasses(TaskModule) if c.__module__ in shipped}
    # A shared base of several tasks (zoo.tasks.image.ImageTask) builds nothing itself: it is no task,
    # and it must have tasks under it.
    bases = {
        c for c in found if "build" not in vars(c) and not any("build" in vars(k) for k in c.__mro__[1:] if k is not TaskModule)
    }
    assert all(c.__subclasses__() for c in bases), f"task bases without tasks: {bases}"
    return sorted(found - bases, key=lambda c: c.__name__)


def test_every_task_follows_the_contract():
    from zoo.tasks.base import TaskModule

    tasks = task_classes()
    assert len(tasks) >= 5, tasks
    for cls in tasks:
        for method in ("build", "predict", "predict_step"):
            assert getattr(cls, method) is not getattr(TaskModule, method, None), f"{cls.__name__} lacks its own {method}"
        params = inspect.signature(cls.__init__).parameters
        assert set(cls.data_hparams) <= set(params), f"{cls.__name__}: data_hparams that are no init arguments"
        assert set(cls.required_data) <= set(cls.data_hparams) and set(cls.must_match) <= set(cls.data_hparams)
        # one vocabulary of argument names across tasks
        for old, new in {
            "encoder_layers": "num_layers",
            "num_classes": "label_names",
            "classes": "label_names",
            "beam": "beam_size",
            "hidden": "hidden_size",
            "layers": "num_layers",
        }.items():
            assert old not in params, f"{cls.__name__} takes {old!r}: the zoo's name is {new!r}"
        predict = inspect.signature(cls.predict).parameters
        assert list(predict)[:2] == ["self", list(predict)[1]] and len(predict) >= 2
        # the optimiser's arguments are declared once (TaskModule), reached through **optimiser
        from zoo.tasks.base import OPTIMISER_ARGS, Optimiser, init_arguments

        assert not set(OPTIMISER_ARGS) & set(params), f"{cls.__name__} re-declares optimiser arguments"
        assert set(OPTIMISER_ARGS) <= set(init_arguments(cls)), f"{cls.__name__} does not pass **optimiser on"
        assert isinstance(cls.optimiser, Optimiser)


def test_no_file_names_a_dataset_under_tasks():
    """Belt and braces for the import test: no dataset module's name in the tasks' source at all."""
    datasets = {p.stem for p in (REPO / "datamodules").glob("*.py")} - {m.split(".")[1] for m in FORMAT_MODULES} - {"__init__"}
    for path in (REPO / "zoo" / "tasks").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        named = [d for d in datasets if f"datamodules.{d} import" in text or f"import datamodules.{d}" in text]
        assert not named, f"{path.name} imports {named}"


@pytest.mark.parametrize("name", ["zoo.tasks.base", "zoo.hub", "zoo.cli"])
def test_layers_import_on_their_own(name):
    """Each layer imports in a fresh interpreter (a cycle at import time would fail here)."""
    import subprocess

    run = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
