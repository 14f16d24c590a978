"""The whole configuration as one TOML file: categories, sites, devices and their button mappings.

In the style of ``config/``: ``[[category]]``, ``[[site]]`` and ``[[device]]`` tables,
each device's buttons as ``[[device.button]]``. :func:`export` writes it (the same
database gives the same file, byte for byte); :func:`run` imports one in a single
transaction:

- everything is checked first (every problem listed, with where it is), and nothing
  changes if anything is wrong;
- entries are matched by their key (a category's ``slug``, a site's ``code``, a
  ``device_id``, a button and press type): new ones are added, others changed; a key
  left out of an entry keeps what the database has (a new entry takes the default);
- nothing is removed unless ``prune``: then button mappings the file does not have go,
  devices it does not have are retired (their history stays), and sites and categories
  it does not have are deleted when nothing refers to them (kept and reported otherwise);
- ``dry_run`` reports what it would change, per kind, and changes nothing.

Broker credentials are not part of it (each device has its own): an import reports the
devices it retired (:attr:`Report.retired`), and the page, the API and the command line
delete their accounts after it commits (``server.domain.broker_accounts.remove_many``).

>>> print(to_toml_string("Till \\"1\\""))
"Till \\"1\\""
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.domain import audit, categories, devices, sites
from server.db import Database
from server.models import DEVICE_KINDS, DEVICE_STATUSES, ButtonMapping, Category, Device, Site

VERSION = 1
KINDS = ("categories", "sites", "devices", "mappings")
# A chain's configuration (500 shops, 1500 buttons) is some 300 KB; past this the file is refused.
MAX_BYTES = 8 * 1024 * 1024
MAX_ENTRIES = 100_000
# Arrays and tables inside one another: a configuration file has a handful of levels.
MAX_NESTING = 16
# Problems listed one by one; the rest are counted.
MAX_LISTED = 200
# Lines of "what changed" kept in a report and in the audit row.
MAX_CHANGE_LINES = 500
# reopen_window_min has no null in TOML: this word stands for "the server's reopen_window_s".
DEFAULT_WORD = "default"
HEADER = """\
# dashdesk configuration: categories, sites, devices and their button mappings.
# Written by `dashdesk config export` (or Admin → Configuration). `dashdesk config import FILE`
# applies it: it adds and changes, and removes only with --prune (--dry-run says what it would do).
# A key left out of an entry keeps what dashdesk has. Broker credentials are not in this file.
"""
CATEGORY_KEYS = ("slug", *categories.FIELDS)
SITE_KEYS = sites.CSV_COLUMNS
DEVICE_KEYS = ("device_id", "site", "kind", "status", "test_mode", "button")
BUTTON_KEYS = ("button", "press", "action", "category", "label")


class ConfigRejected(ValueError):
    """The file has problems; nothing of it was imported."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in the file; nothing was imported")

    def listed(self) -> list[str]:
        return self.errors[:MAX_LISTED]


@dataclass
class Counts:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass
class Report:
    """What an import did (or, ``dry_run``, would do)."""

    dry_run: bool
    prune: bool
    counts: dict[str, Counts] = field(default_factory=lambda: {k: Counts() for k in KINDS})
    changes: list[str] = field(default_factory=list)
    # With prune: what could not be removed because something refers to it.
    kept: list[str] = field(default_factory=list)
    # Devices the import retired (pruned, or given status "retired"): their broker accounts should go.
    retired: list[str] = field(default_factory=list)
    more_changes: int = 0

    def note(self, line: str) -> None:
        if len(self.changes) < MAX_CHANGE_LINES:
            self.changes.append(line)
        else:
            self.more_changes += 1

    @property
    def changed_anything(self) -> bool:
        return any(c.added or c.changed or c.removed for c in self.counts.values())

    def summary(self) -> str:
        """``categories: 1 added, 2 changed, 3 unchanged; sites: ...`` (removed only with prune)."""
        parts = []
        for kind, c in self.counts.items():
            text = f"{kind}: {c.added} added, {c.changed} changed, {c.unchanged} unchanged"
            parts.append(text + (f", {c.removed} removed" if self.prune else ""))
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "prune": self.prune,
                "counts": {k: vars(c) for k, c in self.counts.items()},
                "changes": self.changes, "more_changes": self.more_changes, "kept": self.kept,
                "retired": self.retired}


# ------------------------------------------------------------------ export


def to_toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but TOML wants DEL escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return to_toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _key(k: Any) -> str:
    k = str(k)
    return k if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k) else to_toml_string(k)


def export(s: Session) -> str:
    """The configuration in ``s``'s database as TOML text (deterministic: sorted by key)."""
    out = [HEADER, f"version = {VERSION}\n"]
    for c in s.scalars(select(Category).order_by(Category.slug)):
        out.append("\n[[category]]\n")
        out.append(f"slug = {_value(c.slug)}\nname = {_value(c.name)}\nicon = {_value(c.icon or '')}\n"
                   f"priority = {c.priority}\ndedup_scope = {_value(c.dedup_scope)}\n")
        window = DEFAULT_WORD if c.reopen_window_min is None else c.reopen_window_min
        out.append(f"reopen_window_min = {_value(window)}\n")
        out.append(f"notify = {_value(list(c.notify or []))}\n")
        out.append(f"labels = {_value(dict(sorted((c.labels or {}).items())))}\n")
        sla = {str(p): dict(sorted(t.items())) for p, t in sorted((c.sla or {}).items())}
        if sla:
            out.append("\n[category.sla]\n")
            out.extend(f"{_key(p)} = {_value(t)}\n" for p, t in sla.items())
        else:
            out.append("sla = {}\n")
    for site in s.scalars(select(Site).order_by(Site.code)):
        out.append("\n[[site]]\n")
        for k in SITE_KEYS:
            v = sites.format_hours(site.hours) if k == "hours" else (getattr(site, k) or "")
            out.append(f"{k} = {_value(v)}\n")
    by_device: dict[str, list[ButtonMapping]] = {}
    for m in s.scalars(select(ButtonMapping).options(joinedload(ButtonMapping.category))
                       .order_by(ButtonMapping.device_id, ButtonMapping.button, ButtonMapping.press)):
        by_device.setdefault(m.device_id, []).append(m)
    for d in s.scalars(select(Device).options(joinedload(Device.site)).order_by(Device.device_id)):
        out.append("\n[[device]]\n")
        out.append(f"device_id = {_value(d.device_id)}\nsite = {_value(d.site.code if d.site else '')}\n"
                   f"kind = {_value(d.kind)}\nstatus = {_value(d.status)}\ntest_mode = {_value(bool(d.test_mode))}\n")
        for m in by_device.get(d.device_id, []):
            out.append("\n[[device.button]]\n")
            out.append(f"button = {_value(m.button)}\n")
            if m.press:
                out.append(f"press = {_value(m.press)}\n")
            if m.action != "report":
                out.append(f"action = {_value(m.action)}\n")
            if m.category is not None:
                out.append(f"category = {_value(m.category.slug)}\n")
            if m.label:
                out.append(f"label = {_value(m.label)}\n")
    return "".join(out)


# ------------------------------------------------------------------ reading and checking


@dataclass
class _Entry:
    where: str
    values: dict[str, Any]


@dataclass
class _Plan:
    categories: dict[str, _Entry] = field(default_factory=dict)
    sites: dict[str, _Entry] = field(default_factory=dict)
    devices: dict[str, _Entry] = field(default_factory=dict)
    # device_id → (button, press) → MappingIn; None: the entry names no buttons.
    buttons: dict[str, dict[tuple[str, str], devices.MappingIn] | None] = field(default_factory=dict)


def decode(body: bytes) -> str:
    if len(body) > MAX_BYTES:
        raise ConfigRejected([f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB"])
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = body[:exc.start].count(b"\n") + 1
        raise ConfigRejected([f"line {line}: not UTF-8 text"]) from None


def _tables(data: dict[str, Any], key: str, errors: list[str]) -> list[tuple[str, dict[str, Any]]]:
    items = data.get(key, [])
    if not isinstance(items, list):
        errors.append(f"{key}: write each as a [[{key}]] table")
        return []
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"{key}[{i + 1}]: not a table")
        else:
            out.append((f"{key}[{i + 1}]", item))
    return out


def _unknown(where: str, entry: dict[str, Any], allowed: tuple[str, ...], errors: list[str]) -> None:
    for k in entry:
        if k not in allowed:
            errors.append(f"{where}: unknown key '{str(k)[:40]}'; the keys are {', '.join(allowed)}")


def parse(text: str) -> _Plan:
    """Read and check the file on its own (references to the database are checked in :func:`apply`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigRejected([f"not TOML: {exc}"]) from None
    except RecursionError:
        # Arrays or inline tables nested some hundreds deep exhaust the parser's stack.
        raise ConfigRejected([f"arrays or tables are nested too deeply (a configuration file needs at most "
                              f"{MAX_NESTING})"]) from None
    if wire.nesting_depth(data, MAX_NESTING) > MAX_NESTING:
        raise ConfigRejected([f"arrays or tables are nested deeper than {MAX_NESTING} levels; a configuration "
                              "file needs no more"])
    errors: list[str] = []
    for k in data:
        if k not in ("version", "category", "site", "device"):
            errors.append(f"unknown key '{str(k)[:40]}' at the top; the file has [[category]], [[site]] and "
                          "[[device]] tables (and version)")
    if data.get("version", VERSION) != VERSION:
        errors.append(f"version = {data.get('version')!r}: this dashdesk reads version {VERSION}")
    plan = _Plan()
    entries = sum(len(data.get(k, [])) if isinstance(data.get(k), list) else 0 for k in ("category", "site", "device"))
    if entries > MAX_ENTRIES:
        raise ConfigRejected([f"more than {MAX_ENTRIES} entries; split the file"])

    for where, entry in _tables(data, "category", errors):
        slug = entry.get("slug")
        if not isinstance(slug, str) or not wire.valid_id(slug):
            errors.append(f"{where}: slug must match {wire.ID_PATTERN.pattern}")
            continue
        where = f"{where} ({slug})"
        _unknown(where, entry, CATEGORY_KEYS, errors)
        values = {k: v for k, v in entry.items() if k in categories.FIELDS}
        if values.get("reopen_window_min") == DEFAULT_WORD:
            values["reopen_window_min"] = None
        try:
            values = categories.clean(values)
        except categories.CategoryError as exc:
            errors.extend(f"{where}: {k}: {v}" for k, v in exc.errors.items())
            continue
        if slug in plan.categories:
            errors.append(f"{where}: category {slug} is also {plan.categories[slug].where}")
            continue
        plan.categories[slug] = _Entry(where, values)

    for where, entry in _tables(data, "site", errors):
        code = entry.get("code")
        where = f"{where} ({code})" if isinstance(code, str) and code else where
        if "code" not in entry:
            errors.append(f"{where}: code is required")
            continue
        try:
            values = sites.clean(entry, partial=True)
        except sites.SiteError as exc:
            errors.extend(f"{where}: {k}: {v}" for k, v in exc.errors.items())
            continue
        if values["code"] in plan.sites:
            errors.append(f"{where}: site {values['code']} is also {plan.sites[values['code']].where}")
            continue
        plan.sites[values["code"]] = _Entry(where, values)

    for where, entry in _tables(data, "device", errors):
        device_id = entry.get("device_id")
        if not isinstance(device_id, str) or not wire.valid_id(device_id):
            errors.append(f"{where}: device_id must match {wire.ID_PATTERN.pattern}")
            continue
        where = f"{where} ({device_id})"
        _unknown(where, entry, DEVICE_KEYS, errors)
        values: dict[str, Any] = {}
        if "site" in entry:
            if not isinstance(entry["site"], str):
                errors.append(f"{where}: site must be a site's code (or \"\" for none)")
            else:
                values["site"] = sites.normal_code(entry["site"])  # codes are case-insensitive
        if "kind" in entry:
            if entry["kind"] not in DEVICE_KINDS:
                errors.append(f"{where}: kind must be one of {', '.join(DEVICE_KINDS)}")
            values["kind"] = entry["kind"]
        if "status" in entry:
            if entry["status"] not in DEVICE_STATUSES:
                errors.append(f"{where}: status must be one of {', '.join(DEVICE_STATUSES)}")
            values["status"] = entry["status"]
        if "test_mode" in entry:
            if not isinstance(entry["test_mode"], bool):
                errors.append(f"{where}: test_mode must be true or false")
            values["test_mode"] = entry["test_mode"]
        if device_id in plan.devices:
            errors.append(f"{where}: device {device_id} is also {plan.devices[device_id].where}")
            continue
        plan.devices[device_id] = _Entry(where, values)
        plan.buttons[device_id] = _buttons(where, entry, errors) if "button" in entry else None
    if errors:
        raise ConfigRejected(errors)
    return plan


def _buttons(where: str, entry: dict[str, Any], errors: list[str]) -> dict[tuple[str, str], devices.MappingIn]:
    out: dict[tuple[str, str], devices.MappingIn] = {}
    items = entry["button"]
    if not isinstance(items, list):
        errors.append(f"{where}: write each button as a [[device.button]] table")
        return out
    for i, b in enumerate(items):
        at = f"{where}.button[{i + 1}]"
        if not isinstance(b, dict):
            errors.append(f"{at}: not a table")
            continue
        _unknown(at, b, BUTTON_KEYS, errors)
        if any(not isinstance(b.get(k, ""), str) for k in BUTTON_KEYS):
            errors.append(f"{at}: {', '.join(BUTTON_KEYS)} are text")
            continue
        try:
            m = devices.check_mapping(b.get("button", ""), b.get("press"), b.get("action"), b.get("category"),
                                      b.get("label"))
        except devices.AdminError as exc:
            errors.append(f"{at}: {exc.message}")
            continue
        if (m.button, m.press) in out:
            errors.append(f"{at}: button {m.button} ({devices.PRESS_LABELS[m.press]}) is mapped twice")
            continue
        out[(m.button, m.press)] = m
    return out


# ------------------------------------------------------------------ applying


def _check_references(s: Session, plan: _Plan) -> tuple[dict[str, Category], dict[str, Site], dict[str, Device]]:
    """What the file refers to must be in it or in the database; new entries need their required keys."""
    errors: list[str] = []
    cats = {c.slug: c for c in s.scalars(select(Category))}
    site_rows = _by_key(s, Site, Site.code, list(plan.sites))
    device_rows = _by_key(s, Device, Device.device_id, list(plan.devices))
    for slug, e in plan.categories.items():
        if slug not in cats and "name" not in e.values:
            errors.append(f"{e.where}: name is required for a new category")
    for code, e in plan.sites.items():
        if code not in site_rows and "name" not in e.values:
            errors.append(f"{e.where}: name is required for a new site")
    wanted_sites = {e.values["site"] for e in plan.devices.values() if e.values.get("site")}
    known_sites = set(plan.sites) | set(_by_key(s, Site, Site.code, sorted(wanted_sites - set(plan.sites))))
    for device_id, e in plan.devices.items():
        site = e.values.get("site")
        if site and site not in known_sites:
            errors.append(f"{e.where}: there is no site {site[:70]} (in the file or in dashdesk)")
        for m in (plan.buttons.get(device_id) or {}).values():
            if m.category and m.category not in cats and m.category not in plan.categories:
                errors.append(f"{e.where}: button {m.button}: there is no category {m.category}")
    if errors:
        raise ConfigRejected(errors)
    return cats, site_rows, device_rows


def _by_key(s: Session, model: Any, column: Any, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(keys), 500):
        for row in s.scalars(select(model).where(column.in_(keys[i:i + 500]))):
            out[getattr(row, column.key)] = row
    return out


def apply(s: Session, text: str, actor: str, *, prune: bool = False, dry_run: bool = False,
          default_sla: dict[str, Any] | None = None) -> Report:
    """Import ``text`` in ``s``'s transaction; raises :class:`ConfigRejected` before changing anything."""
    plan = parse(text)
    cats, site_rows, device_rows = _check_references(s, plan)
    report = Report(dry_run=dry_run, prune=prune)
    # What changed, each under its own target (the page of that site, device or category shows it), as if
    # changed there; written together, in one statement, before the import's own row.
    rows: list[tuple[str, str, dict[str, Any]]] = []
    via = {"via": "configuration import"}

    count = report.counts["categories"]
    for slug, e in plan.categories.items():
        row = cats.get(slug)
        if row is None:
            row = Category(slug=slug, name=e.values["name"], icon="", priority=3, sla=dict(default_sla or {}),
                           labels={}, dedup_scope="site", notify=[], reopen_window_min=None)
            for k, v in e.values.items():
                setattr(row, k, v)
            s.add(row)
            cats[slug] = row
            count.added += 1
            report.note(f"category {slug}: added")
            rows.append(("category.create", f"category:{slug}", {**e.values, **via}))
            continue
        diff = {k: [getattr(row, k), v] for k, v in e.values.items() if getattr(row, k) != v}
        for k, (_, v) in diff.items():
            setattr(row, k, v)
        _counted(report, count, f"category {slug}", diff)
        if diff:
            rows.append(("category.update", f"category:{slug}", {"changes": diff, **via}))
    s.flush()

    count = report.counts["sites"]
    for code, e in plan.sites.items():
        site = site_rows.get(code)
        if site is None:
            made = {**sites.clean({"code": code, "name": e.values["name"]}), **e.values}
            site = Site(**made)
            s.add(site)
            site_rows[code] = site
            count.added += 1
            report.note(f"site {code}: added")
            rows.append(("site.create", f"site:{code}", {**{k: v for k, v in made.items() if k != "code"}, **via}))
            continue
        diff = sites.changes(site, e.values)
        for k, (_, v) in diff.items():
            setattr(site, k, v)
        _counted(report, count, f"site {code}", diff)
        if diff:
            rows.append(("site.update", f"site:{code}", {"changes": diff, **via}))
    s.flush()

    missing = sorted({e.values["site"] for e in plan.devices.values() if e.values.get("site")} - set(site_rows))
    site_rows.update(_by_key(s, Site, Site.code, missing))
    count = report.counts["devices"]
    for device_id, e in plan.devices.items():
        device = device_rows.get(device_id)
        values = e.values
        if device is None:
            site = site_rows.get(values["site"]) if values.get("site") else None
            device = Device(device_id=device_id, status=values.get("status", "active"),
                            kind=values.get("kind", "physical"), test_mode=values.get("test_mode", False), site=site)
            s.add(device)
            device_rows[device_id] = device
            count.added += 1
            report.note(f"device {device_id}: added")
            rows.append(("device.create", f"device:{device_id}",
                         {"site": site.code if site else None, "kind": device.kind, "status": device.status,
                          "test_mode": bool(device.test_mode), **via}))
            if device.status == "retired":  # it may have a broker account from before dashdesk knew it
                report.retired.append(device_id)
            continue
        diff: dict[str, list[Any]] = {}
        if "site" in values:
            now = values["site"] or None
            was = device.site.code if device.site else None
            if now != was:
                diff["site"] = [was, now]
                device.site = site_rows[now] if now else None
                devices.place_tickets(s, device, actor)
        if "kind" in values and device.kind != values["kind"]:
            diff["kind"] = [device.kind, values["kind"]]
            device.kind = values["kind"]
        if "status" in values and device.status != values["status"]:
            diff["status"] = [device.status, values["status"]]
            # As an edit of the device by the API does: the step of that name, with its audit row.
            devices.set_status(s, device, values["status"], actor, "set in an imported configuration")
        if "test_mode" in values and bool(device.test_mode) != values["test_mode"]:
            diff["test_mode"] = [bool(device.test_mode), values["test_mode"]]
            devices.set_test_mode(s, device, values["test_mode"], actor)
        if diff.get("status", [None, None])[1] == "retired":
            report.retired.append(device_id)
        _counted(report, count, f"device {device_id}", diff)
        # A status or test mode change has its own row already (the step of that name); site and kind here.
        edited = {k: v for k, v in diff.items() if k in ("site", "kind")}
        if edited:
            rows.append(("device.update", f"device:{device_id}", {"changes": edited, **via}))
    s.flush()

    mapped = _apply_mappings(s, plan, cats, report)
    if prune:
        _prune(s, plan, report, actor, mapped, rows)
    rows.extend(("mapping.import", f"device:{d}", {**{k: v for k, v in m.items() if v}, **via})
                for d, m in mapped.items() if any(m.values()))
    audit.record_many(s, actor, rows)
    audit.record(s, actor, "config.import", "config:import", prune=prune,
                 counts={k: vars(c) for k, c in report.counts.items()}, changes=report.changes,
                 kept=report.kept)
    return report


def _counted(report: Report, count: Counts, what: str, diff: dict[str, list[Any]]) -> None:
    if diff:
        count.changed += 1
        report.note(f"{what}: " + ", ".join(f"{k} {_short(a)} → {_short(b)}" for k, (a, b) in diff.items()))
    else:
        count.unchanged += 1


def _short(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 60 else text[:60] + "…"


Mapped = dict[str, dict[str, list[Any]]]


def _apply_mappings(s: Session, plan: _Plan, cats: dict[str, Category], report: Report) -> Mapped:
    """Apply the file's buttons; returns per device what changed: ``added``, ``changed``, ``removed``."""
    mapped: Mapped = {}

    def note(device_id: str, kind: str, what: Any) -> None:
        mapped.setdefault(device_id, {"added": [], "changed": [], "removed": []})[kind].append(what)

    count = report.counts["mappings"]
    wanted_devices = [d for d, b in plan.buttons.items() if b is not None]
    have: dict[str, dict[tuple[str, str], ButtonMapping]] = {d: {} for d in plan.devices}
    for i in range(0, len(wanted_devices), 500):
        for m in s.scalars(select(ButtonMapping).options(joinedload(ButtonMapping.category))
                           .where(ButtonMapping.device_id.in_(wanted_devices[i:i + 500]))):
            have[m.device_id][(m.button, m.press)] = m
    for device_id in wanted_devices:
        rows = have[device_id]
        for key, m in (plan.buttons[device_id] or {}).items():
            category = cats[m.category] if m.category else None
            row = rows.get(key)
            what = f"device {device_id} button {m.button}" + (f" ({m.press})" if m.press else "")
            if row is None:
                s.add(ButtonMapping(device_id=device_id, button=m.button, press=m.press, category=category,
                                    label=m.label, action=m.action))
                count.added += 1
                report.note(f"{what}: added")
                note(device_id, "added", {"button": m.button, "press": m.press or None, "action": m.action,
                                          "category": m.category, "label": m.label})
                continue
            before = devices.describe(row)
            row.category, row.label, row.action = category, m.label, m.action
            after = {"button": m.button, "press": m.press or None, "action": m.action, "category": m.category,
                     "label": m.label}
            diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
            _counted(report, count, what, diff)
            if diff:
                note(device_id, "changed", {"button": m.button, "press": m.press or None, "changes": diff})
        if report.prune:
            for key, row in rows.items():
                if key not in (plan.buttons[device_id] or {}):
                    note(device_id, "removed", devices.describe(row))
                    s.delete(row)
                    count.removed += 1
                    report.note(f"device {device_id} button {row.button}: removed")
    return mapped


def _prune(s: Session, plan: _Plan, report: Report, actor: str, mapped: Mapped,
           rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Remove what the file does not have (see the module's docstring); what goes is noted in ``mapped``
    (mappings, per device) and ``rows`` (the audit rows of sites and categories deleted)."""
    s.flush()
    # Devices named without buttons lose their mappings; devices not named are retired and lose theirs.
    silent = [d for d, b in plan.buttons.items() if b is None]
    gone = list(s.scalars(select(Device).where(Device.device_id.not_in(list(plan.devices)) if plan.devices
                                               else Device.id.is_not(None))))
    losing = silent + [d.device_id for d in gone]
    for i in range(0, len(losing), 500):
        for m in s.scalars(select(ButtonMapping).options(joinedload(ButtonMapping.category))
                           .where(ButtonMapping.device_id.in_(losing[i:i + 500]))
                           .order_by(ButtonMapping.device_id, ButtonMapping.button, ButtonMapping.press)):
            mapped.setdefault(m.device_id, {"added": [], "changed": [], "removed": []})["removed"].append(
                devices.describe(m))
    for i in range(0, len(silent), 500):
        removed = s.execute(delete(ButtonMapping).where(ButtonMapping.device_id.in_(silent[i:i + 500]))).rowcount
        report.counts["mappings"].removed += removed or 0
    for device in gone:
        removed = s.execute(delete(ButtonMapping).where(ButtonMapping.device_id == device.device_id)).rowcount
        report.counts["mappings"].removed += removed or 0
        if device.status != "retired":
            devices.set_status(s, device, "retired", actor, "not in an imported configuration")
            report.counts["devices"].removed += 1
            report.retired.append(device.device_id)
            report.note(f"device {device.device_id}: retired (not in the file)")
    s.flush()
    for model, column, wanted, kind, name in ((Site, Site.code, plan.sites, "sites", "site"),
                                              (Category, Category.slug, plan.categories, "categories", "category")):
        for row in s.scalars(select(model).where(column.not_in(list(wanted))) if wanted else select(model)):
            key = getattr(row, column.key)
            try:
                # A savepoint each: a row something refers to (a ticket, a device) stays, the rest goes.
                with s.begin_nested():
                    s.delete(row)
                    s.flush()
            except IntegrityError:
                report.kept.append(f"{name} {key}: in use (tickets or devices refer to it)")
                continue
            report.counts[kind].removed += 1
            report.note(f"{name} {key}: removed")
            rows.append((f"{name}.delete", f"{name}:{key}", {"via": "configuration import (prune)"}))


class _DryRun(Exception):
    pass


def run(db: Database, text: str, actor: str, *, dry_run: bool = False, prune: bool = False,
        default_sla: dict[str, Any] | None = None) -> Report:
    """Import ``text`` in one transaction (rolled back with ``dry_run``); raises :class:`ConfigRejected`."""
    report: Report | None = None
    try:
        with db.write() as s:
            report = apply(s, text, actor, prune=prune, dry_run=dry_run, default_sla=default_sla)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    assert report is not None
    return report


def export_text(db: Database) -> str:
    with db.read() as s:
        return export(s)
