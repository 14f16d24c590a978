"""The benchmarks' profile classifier names the project's functions and modules by string: each must exist, so
that moving one without updating benchmarks/profiling.py fails here instead of filing samples under the wrong
heading."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from benchmarks import profiling

ROOT = Path(__file__).resolve().parents[2]


def _defined(module: str, qualname: str) -> bool:
    """Whether ``qualname`` (``Class.method``, ``function.<locals>.inner``) is defined in ``module``'s source."""
    path = ROOT / (module.replace(".", "/") + ".py")
    scope: list[ast.stmt] = ast.parse(path.read_text()).body
    names = qualname.split(".")
    for i, name in enumerate(names):
        if name == "<locals>":
            continue
        found = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and n.name == name), None)
        if found is None:
            return False
        # Inside a function, what comes next is nested in its body (``<locals>``), at any depth of statements.
        scope = list(ast.walk(found))[1:] if i + 1 < len(names) and names[i + 1] == "<locals>" else found.body
    return True


@pytest.mark.parametrize("name", profiling.FUNCTIONS)
def test_every_function_the_classifier_names_exists(name):
    module, qualname = profiling.split_name(name)
    importlib.import_module(module)
    assert _defined(module, qualname), f"{name}: benchmarks/profiling.py names a function {module} does not have"
    if "<locals>" not in qualname:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        assert callable(obj)


@pytest.mark.parametrize("module", profiling.MODULES)
def test_every_module_the_classifier_names_exists(module):
    importlib.import_module(module)
    assert (ROOT / profiling.module_path(module)).exists()


def test_the_bridge_names_its_threads_as_the_classifier_expects():
    source = "\n".join(p.read_text() for p in (ROOT / "broker_bridge").glob("*.py"))
    for prefix in profiling.BRIDGE_THREADS:
        if prefix != "paho-mqtt":  # paho's own name for its network thread
            assert f'"{prefix}' in source, f"no thread of the bridge is named {prefix}..."


def test_a_name_that_is_nowhere_is_refused():
    with pytest.raises(ValueError):
        profiling.split_name("server.no_such_module.record")
    assert not _defined("server.db", "Database.no_such_method")
    assert not _defined("server.app", "create_app.<locals>.no_such_view")


def test_samples_are_filed_under_the_functions_named():
    view = "WSGITask.execute (waitress/task.py:1)"
    write = profiling.frame_of(profiling.WRITE_LOCK) + ":10)"
    begin = profiling.frame_of(profiling.BEGIN) + ":80)"
    healthz = profiling.frame_of(profiling.HEALTHZ) + ":5)"
    assert profiling.classify_server([view, healthz, write])[1].startswith("waiting for the server's in-process")
    assert profiling.classify_server([view, healthz, write, begin, "execute (sqlalchemy/engine/base.py:3)"]) == \
        ("healthz", "SQLite: waiting for the write lock (BEGIN IMMEDIATE, busy_timeout sleeps)")
    request = profiling.frame_of(profiling.SERVER_REQUEST) + ":80)"
    assert profiling.classify_bridge(["thread (0x1): bridge-press-1", request, "SocketIO.readinto (socket.py:1)"]) \
        == ("press workers", "waiting for the server's HTTP answer")
