"""How the code is laid out: no import circle among the project's modules, no function a reader cannot follow in
one screen, no environment variable that picks what runs, no hand-kept count or time in the README."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("experiments", "synthetic", "paper_figs", "theory")
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    """Every project module by dotted name (a package by its own name)."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (inside functions too), parents left out:
    importing ``a.b`` runs ``a`` first, which is no circle of the code's own making."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, circles, counter = {}, {}, set(), [], [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = counter
                    counter += 1
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_the_circle_finder_finds_a_circle_and_only_circles():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_two_project_modules_import_each_other():
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the walk saw the project
    assert import_circles(graph) == []


def _long_functions() -> list[str]:
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name} ({lines} lines)")
    return long


def test_every_function_reads_in_one_screen():
    assert _long_functions() == []


def test_no_environment_variable_picks_an_attention_form():
    """Which form runs is a config value (``form``, with ``auto`` choosing); the only variable read is Triton's
    own interpreter switch, which lets a named fused form run on CPU tensors and never changes what ``auto``
    picks."""
    read = set()
    for path in (ROOT / "experiments" / "attention").glob("*.py"):
        read |= set(re.findall(r"environ(?:\.get)?[\[(]\s*\"(\w+)\"", path.read_text(encoding="utf-8")))
        assert "getenv" not in path.read_text(encoding="utf-8"), path.name
    assert read <= {"TRITON_INTERPRET"}


@pytest.mark.parametrize("interpret", ["1", None])
def test_auto_picks_the_same_form_with_and_without_the_triton_interpreter(monkeypatch, interpret):
    import torch

    from experiments.attention import _elementwise

    if interpret is None:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    else:
        monkeypatch.setenv("TRITON_INTERPRET", interpret)
    cpu = torch.device("cpu")
    assert _elementwise.planned_form("auto", cpu, 64, 64, 16) == "materialised"
    assert _elementwise.planned_form("auto", cpu, 4096, 4096, 16) == "blockwise"


def _hand_written(readme: str) -> str:
    """The README without its generated blocks (``<!-- name -->`` ... ``<!-- /name -->``)."""
    return re.sub(r"<!-- (\w+) -->.*?<!-- /\1 -->", "", readme, flags=re.S)


HAND_KEPT = re.compile(r"\b\d+(?:\.\d+)?\s*(?:min(?:utes?)?|s|seconds?|h|hours?|tests?|runs?)\b")


def test_the_readme_keeps_no_count_or_time_by_hand():
    assert HAND_KEPT.search("make test  # 1117 tests, 9 min 33 s") and not HAND_KEPT.search("2 CPU cores")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- quickstart -->" in readme and "<!-- results -->" in readme
    assert HAND_KEPT.findall(_hand_written(readme)) == []
