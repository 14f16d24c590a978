"""The code's layout holds: a route module left out of its package's imports would serve nothing, silently."""

from __future__ import annotations

import json
import subprocess
import sys

# The packages whose modules add routes to a blueprint when they are imported.
ROUTE_PACKAGES = ("server.api", "server.desk", "server.admin", "server.phone")
# In a process of its own: what other tests imported must not count.
CHECK = """
import importlib, json, pkgutil, sys
from server.app import create_app
create_app({"data_dir": sys.argv[1]})
out = {}
for package in sys.argv[2:]:
    names = [f"{package}.{m.name}" for m in pkgutil.iter_modules(importlib.import_module(package).__path__)]
    out[package] = {"modules": len(names), "not_imported": [n for n in names if n not in sys.modules]}
print(json.dumps(out))
"""


def test_every_module_of_a_route_package_is_imported_by_the_app(tmp_path):
    run = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path), *ROUTE_PACKAGES], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.splitlines()[-1])
    assert all(found[p]["modules"] > 0 for p in ROUTE_PACKAGES)
    assert {p: found[p]["not_imported"] for p in ROUTE_PACKAGES} == {p: [] for p in ROUTE_PACKAGES}


def test_the_command_loads_no_parts_library_until_a_command_runs():
    """``dashdesk`` registers every part's commands on every machine: a Pi without Flask, a server without
    gpiozero (each installs only its own extra) must still start it."""
    check = ("import sys, launcher.cli; print(' '.join(m for m in ('gpiozero', 'apscheduler', 'psutil', 'flask', "
             "'sqlalchemy', 'waitress', 'requests') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == []
