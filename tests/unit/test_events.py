"""Every event kind is declared once (server.domain.events), and docs/api.md lists exactly those."""

from __future__ import annotations

import re
from pathlib import Path

from server.domain import events

ROOT = Path(__file__).resolve().parents[2]


def documented() -> dict[str, tuple[str, set[str]]]:
    """docs/api.md's "Event kinds" table: kind -> (when, the data keys it names)."""
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("\n## Event kinds\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], set(re.findall(r"`(\w+)`", cells[2])))
    return rows


def test_the_docs_list_every_event_kind_and_no_other():
    assert set(documented()) == set(events.all_names())


def test_the_docs_name_every_key_of_each_kinds_data():
    docs = documented()
    for name, kind in events.KINDS.items():
        when, keys = docs[name]
        assert when == kind.when, name
        assert set(kind.data) <= keys, f"{name}: not in docs/api.md: {set(kind.data) - keys}"


def test_the_server_writes_no_event_kind_of_its_own_making():
    """A kind spelled out anywhere but events.py is one the list would miss."""
    # Any "ticket.<word>" or "test.<word>" in quotes (a new kind too, not only the known ones); "ticket.html" is a
    # template.
    spelled = re.compile(r"""["'](?:ticket|test)\.(?!html["'])[a-z_]+["']""")
    found = [f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "server").rglob("*.py")
             if path.name != "events.py" and "migrations" not in path.parts
             for n, line in enumerate(path.read_text().splitlines(), 1) if spelled.search(line)]
    assert not found


def test_a_press_writes_the_kind_of_its_result():
    assert events.press_kind("merged", test=False) == "ticket.merged"
    assert events.press_kind("cancelled", test=True) == "test.cancelled"
