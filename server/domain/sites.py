"""Sites (shops): their fields checked, service hours in a human form, and the CSV import of a chain.

Service hours are stored per weekday, ``{"mon": [["05:00", "18:00"]], ..., "sun": []}``
(``{}`` while not given; ``[]`` for a closed day), and read and shown as people
write them: ``Mon–Sat 05:00–18:00; Sun closed``.

>>> parse_hours("Mon-Fri 08:00-17:00; Sat 09:00-13:00; Sun closed")["sat"]
[['09:00', '13:00']]
>>> format_hours(parse_hours("mon-sat 5:00-18:00, sun closed"))
'Mon–Sat 05:00–18:00; Sun closed'
"""

from __future__ import annotations

import csv
import functools
import io
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Mapping

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from server.domain import audit
from server.domain.errors import NotFound
from server.domain.inputs import parse_int, text_problem
from server.models import Device, Site

# A site's code, once in lower case: codes are case-insensitive (``SHOP-001`` is ``shop-001``), kept in lower case.
CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CSV_COLUMNS = ("code", "name", "address", "timezone", "hours", "contact")
# /admin/sites/import and /api/v1/sites/import: a site of that code would have no page of its own.
RESERVED_CODES = ("import",)
REQUIRED = ("code", "name")
# A chain's file: 500 shops is the expected size; past this the file is refused, not half-read.
MAX_IMPORT_ROWS = 20000
# Its size: 500 shops is some 100 KB; the upload (page or API) may be this large.
IMPORT_MAX_BYTES = 8 * 1024 * 1024
# Problems listed one by one in an import's report; the rest are counted.
MAX_LISTED_ERRORS = 200
LIMITS = {"name": 200, "address": 1000, "contact": 300}
# Fields of several lines (line breaks and tabs allowed); the others are one line (server.domain.inputs.text_problem).
MULTILINE = ("address", "hours")
MAX_HOURS_TEXT = 1000
_DASH = r"\s*(?:-|–|—|to)\s*"
# Digits are ASCII ([0-9]): \d would take any script's (١٢:٠٠), which no one types for a shop's hours.
_TIME = r"([0-9]{1,2})(?:[:.]([0-9]{2}))?"
_RANGE = re.compile(rf"^{_TIME}{_DASH}{_TIME}$")
_CLAUSE = re.compile(r"^(?P<days>.+?)\s+(?P<times>(?:closed|24h|24/7|[0-9]).*)$", re.IGNORECASE)


class SiteError(ValueError):
    """Some fields of a site are wrong: ``errors`` maps each to what is wrong with it.

    ``status`` is the HTTP status the API answers with: 422 (a field is wrong), or 409 (the code is
    another site's: :data:`CODE_TAKEN`).
    """

    def __init__(self, errors: dict[str, str], status: int = 422):
        self.errors = errors
        self.status = status
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


CODE_TAKEN = 409


# ------------------------------------------------------------------ service hours


def _day(token: str) -> int:
    t = token.strip().lower().rstrip(".")
    for i, name in enumerate(DAY_NAMES):
        if len(t) >= 2 and name.startswith(t):
            return i
    raise ValueError(f"'{token.strip()}' is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def _days(text: str) -> list[int]:
    t = text.strip().lower()
    if t in ("daily", "every day", "all week"):
        return list(range(7))
    out: list[int] = []
    for item in text.split(","):
        if not item.strip():
            raise ValueError(f"'{text.strip()}': a day is missing between commas")
        parts = re.split(_DASH, item.strip(), maxsplit=1)
        if len(parts) == 2:
            first, last = _day(parts[0]), _day(parts[1])
            out.extend((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            out.append(_day(parts[0]))
    return out


def _minutes(hours: str, minutes: str | None, text: str) -> int:
    h, m = parse_int(hours), parse_int(minutes or "0")
    if h is None or m is None or h > 24 or m > 59 or (h == 24 and m):
        raise ValueError(f"'{text}' is not a time of day")
    return h * 60 + m


def _hhmm(total: int) -> str:
    return f"{total // 60:02d}:{total % 60:02d}"


def _ranges(text: str) -> list[list[str]]:
    t = text.strip().lower()
    if t == "closed":
        return []
    if t in ("24h", "24/7"):
        return [["00:00", "24:00"]]
    spans: list[tuple[int, int]] = []
    for part in text.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise ValueError(f"'{part.strip()}' is not a span of hours like 05:00–18:00")
        start, end = _minutes(m[1], m[2], part.strip()), _minutes(m[3], m[4], part.strip())
        if start >= end:
            raise ValueError(f"'{part.strip()}' closes before it opens (past midnight: split it over two days)")
        if start == 24 * 60:
            raise ValueError(f"'{part.strip()}' opens at 24:00")
        spans.append((start, end))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:]):
        if start < end:
            raise ValueError(f"'{text.strip()}': the spans overlap")
    return [[_hhmm(a), _hhmm(b)] for a, b in spans]


def parse_hours(text: str) -> dict[str, list[list[str]]]:
    """``"Mon–Sat 05:00–18:00; Sun closed"`` → hours per weekday; ``""`` → ``{}`` (not given).

    Clauses are separated by ``;``, new lines, or a comma before a day; days not named are closed.
    Raises ValueError.
    """
    # "Mon–Sat 05:00–18:00, Sun closed": a comma after hours and before a day starts a new clause too.
    text = re.sub(r"([0-9]|closed|24h|24/7)\s*,\s*(?=[A-Za-z])", r"\1;", text or "", flags=re.IGNORECASE)
    clauses = [c.strip() for c in re.split(r"[;\n]", text) if c.strip()]
    if not clauses:
        return {}
    out: dict[str, list[list[str]]] = {d: [] for d in DAYS}
    seen: set[int] = set()
    for clause in clauses:
        m = _CLAUSE.match(clause)
        if not m:
            raise ValueError(f"'{clause}': write days, then hours, e.g. 'Mon–Sat 05:00–18:00; Sun closed'")
        days, ranges = _days(m["days"]), _ranges(m["times"])
        for d in days:
            if d in seen:
                raise ValueError(f"{DAYS[d].capitalize()} is given twice")
            seen.add(d)
            out[DAYS[d]] = ranges
    return out


def format_hours(hours: Mapping[str, Any] | None) -> str:
    """Hours per weekday → ``"Mon–Sat 05:00–18:00; Sun closed"`` (``""`` if not given)."""
    if not hours:
        return ""
    parts: list[str] = []
    i = 0
    while i < 7:
        ranges = hours.get(DAYS[i]) or []
        j = i
        while j + 1 < 7 and (hours.get(DAYS[j + 1]) or []) == ranges:
            j += 1
        days = DAYS[i].capitalize() if i == j else f"{DAYS[i].capitalize()}–{DAYS[j].capitalize()}"
        when = ", ".join(f"{a}–{b}" for a, b in ranges) if ranges else "closed"
        parts.append(f"{days} {when}")
        i = j + 1
    return "; ".join(parts)


def check_hours(value: Any) -> dict[str, list[list[str]]]:
    """Hours given as text or as the stored JSON shape, checked and normalised. Raises ValueError."""
    if value is None:
        return {}
    if isinstance(value, str):
        return parse_hours(value)
    if not isinstance(value, dict):
        raise ValueError("give hours as text ('Mon–Sat 05:00–18:00') or as {\"mon\": [[\"05:00\", \"18:00\"]], ...}")
    if not value:
        return {}
    unknown = [k for k in value if k not in DAYS]
    if unknown:
        raise ValueError(f"unknown day {str(unknown[0])[:10]!r}; days are {', '.join(DAYS)}")
    clauses = []
    for day in DAYS:
        spans = value.get(day) or []
        if not isinstance(spans, list) or not all(
                isinstance(s, list) and len(s) == 2 and all(isinstance(t, str) for t in s) for s in spans):
            raise ValueError(f"{day}: give a list of [opens, closes] pairs like [[\"05:00\", \"18:00\"]]")
        clauses.append(f"{day} " + (", ".join(f"{a}-{b}" for a, b in spans) if spans else "closed"))
    return parse_hours("; ".join(clauses))


# ------------------------------------------------------------------ fields


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA time zones the server knows: what a site's ``timezone`` may be."""
    return frozenset(zoneinfo.available_timezones())


def valid_timezone(name: str) -> bool:
    """An IANA time zone name that zoneinfo knows (``Europe/Warsaw``, ``UTC``)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-/]{0,63}", name or ""):
        return False
    zones = time_zones()
    if zones:
        return name in zones
    try:  # no list of zones on this system: zoneinfo itself decides
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def clean(data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """The fields of ``data`` a site may have, checked and normalised; raises :class:`SiteError`.

    ``partial``: only the fields given (an edit); otherwise code and name are required and the
    others take their defaults.
    """
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    unknown = [k for k in data if k not in CSV_COLUMNS]
    for k in unknown:
        errors[str(k)[:30]] = f"unknown field; the fields are {', '.join(CSV_COLUMNS)}"
    for name in CSV_COLUMNS:
        if name not in data:
            if not partial:
                if name in REQUIRED:
                    errors[name] = "required"
                else:
                    out[name] = {"timezone": "UTC", "hours": {}}.get(name, "")
            continue
        value = data[name]
        if name == "hours":
            problem = text_problem(value, multiline=True, max_len=MAX_HOURS_TEXT) if isinstance(value, str) else None
            if problem:
                errors[name] = problem
                continue
            try:
                out[name] = check_hours(value)
            except ValueError as exc:
                errors[name] = str(exc)
            continue
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors[name] = "must be text"
            continue
        value = value.strip()
        problem = text_problem(value, multiline=name in MULTILINE)
        if problem:
            errors[name] = problem
            continue
        if name == "code":
            given, value = value, normal_code(value)
            if value in RESERVED_CODES:
                errors[name] = f"'{given[:70]}' is reserved (it names a page); choose another code"
            elif not CODE_PATTERN.fullmatch(value):
                errors[name] = (f"'{given[:70]}' is not a site code: 1-64 letters, digits and . _ -, "
                                "starting with a letter or digit" if value else "required")
        elif name == "name" and not value:
            errors[name] = "required"
        elif name == "timezone":
            value = value or "UTC"
            if not valid_timezone(value):
                errors[name] = f"'{value[:70]}' is not an IANA time zone name (e.g. Europe/Warsaw, UTC)"
        elif len(value) > LIMITS.get(name, 10**6):
            errors[name] = f"at most {LIMITS[name]} characters"
        out[name] = value
    if errors:
        raise SiteError(errors)
    return out


def normal_code(code: str | None) -> str:
    """A site's code as dashdesk keeps it: codes are case-insensitive, kept in lower case.

    >>> normal_code(" SHOP-001 ")
    'shop-001'
    """
    return (code or "").strip().lower()


def _named(code: str | None) -> tuple[str, list[str]]:
    given = (code or "").strip()
    return given, sorted({given, normal_code(given)})


def by_code(s: Session, code: str | None) -> Site | None:
    """The site ``code`` names, in any case (``SHOP-001`` finds ``shop-001``); None if there is none.

    A code given exactly as kept is found first: a code from before codes were case-insensitive that could
    not be put in lower case (migration 0008: another site had it) stays reachable.
    """
    given, codes = _named(code)
    if not given:
        return None
    rows = {site.code: site for site in s.scalars(select(Site).where(Site.code.in_(codes)))}
    return rows.get(given) or rows.get(normal_code(given))


def get(s: Session, code: str) -> Site:
    """The site ``code`` names (:func:`by_code`); :class:`NotFound` if there is none."""
    site = by_code(s, code)
    if site is None:
        raise NotFound("site", code[:70])
    return site


def id_of(code: str | None) -> Any:
    """The id of the site ``code`` names, as :func:`by_code` finds it, as a scalar subquery (a filter)."""
    given, codes = _named(code)
    return (select(Site.id).where(Site.code.in_(codes)).order_by(case((Site.code == given, 0), else_=1))
            .limit(1).scalar_subquery())


def as_dict(site: Site, devices: int | None = None) -> dict[str, Any]:
    out = {"code": site.code, "name": site.name, "address": site.address, "timezone": site.timezone,
           "hours": site.hours or {}, "hours_text": format_hours(site.hours), "contact": site.contact}
    if devices is not None:
        out["devices"] = devices
    return out


def search(q: str = "") -> Any:
    """The sites whose code, name or address contains ``q`` (all if it is empty), by code."""
    stmt = select(Site).order_by(Site.code)
    if q:
        stmt = stmt.where(or_(Site.code.contains(q, autoescape=True), Site.name.contains(q, autoescape=True),
                              Site.address.contains(q, autoescape=True)))
    return stmt


def device_counts(s: Session, rows: list[Site]) -> dict[int, int]:
    """{site id: how many devices it has} for the sites of ``rows`` (a site with none is left out)."""
    if not rows:
        return {}
    return dict(s.execute(select(Device.site_id, func.count()).where(Device.site_id.in_([r.id for r in rows]))
                          .group_by(Device.site_id)).all())


def device_count(s: Session, site: Site) -> int:
    return device_counts(s, [site]).get(site.id, 0)


def changes(site: Site, values: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for the fields ``values`` would change."""
    return {k: [getattr(site, k), v] for k, v in values.items() if getattr(site, k) != v}


def _code_free(s: Session, code: str, site: Site | None = None) -> None:
    """Refuse a code another site has (``site``: the one that would take it, renamed)."""
    taken = s.scalar(select(Site.id).where(Site.code == code))
    if taken is not None and (site is None or taken != site.id):
        raise SiteError({"code": f"there is already a site {code}"}, CODE_TAKEN)


def create(s: Session, values: dict[str, Any], actor: str) -> Site:
    """A new site from checked values; raises :class:`SiteError` (409) if the code is taken."""
    _code_free(s, values["code"])
    site = Site(**values)
    s.add(site)
    audit.record(s, actor, "site.create", f"site:{site.code}", **{k: v for k, v in values.items() if k != "code"})
    return site


def update(s: Session, site: Site, values: dict[str, Any], actor: str) -> dict[str, list[Any]]:
    """Change ``site``; return (and audit) what changed. The code may change if it is free (else
    :class:`SiteError`, 409): the site's history (its audit rows) then follows it to the new code, and the
    change is recorded there."""
    diff = changes(site, values)
    if "code" in diff:
        _code_free(s, values["code"], site)
    if diff:
        was = f"site:{site.code}"
        for k, (_, new) in diff.items():
            setattr(site, k, new)
        if "code" in diff:
            audit.move_target(s, was, f"site:{site.code}")
        audit.record(s, actor, "site.update", f"site:{site.code}", changes=diff)
    return diff


# ------------------------------------------------------------------ CSV import


@dataclass
class LineError:
    line: int
    message: str


class ImportRejected(ValueError):
    """The file has bad lines; nothing of it was imported."""

    def __init__(self, errors: list[LineError], rows: int = 0):
        self.errors = errors
        self.rows = rows
        super().__init__(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in the file; "
                         "nothing was imported")

    def listed(self) -> list[dict[str, Any]]:
        return [{"line": e.line, "message": e.message} for e in self.errors[:MAX_LISTED_ERRORS]]


@dataclass
class ImportResult:
    rows: int
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "created": len(self.created), "updated": len(self.updated),
                "unchanged": self.unchanged}


def decode(body: bytes) -> str:
    """The file's text (UTF-8, with or without a BOM); raises :class:`ImportRejected` naming the line."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = body[:exc.start].count(b"\n") + 1
        raise ImportRejected([LineError(line, "not UTF-8 text (save the file as CSV UTF-8)")]) from None


def read_csv(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[LineError]]:
    """The rows of a sites file as (line number, {column: value}), and the lines that are not rows.

    A header that cannot be used raises :class:`ImportRejected` at once.

    The first line names the columns (any order; ``code`` and ``name`` required). Commas
    separate fields, or semicolons if the header has those and no comma (spreadsheets in Polish).
    """
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise ImportRejected([LineError(1, f"the file is empty; its first line names the columns: "
                                           f"{','.join(CSV_COLUMNS)}")])
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    errors: list[LineError] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise ImportRejected([LineError(1, f"not CSV: {exc}")]) from None
    for i, h in enumerate(header):
        if h not in CSV_COLUMNS:
            errors.append(LineError(1, f"unknown column '{h[:40]}'; the columns are {', '.join(CSV_COLUMNS)}"))
        elif h in header[:i]:
            errors.append(LineError(1, f"column '{h}' is given twice"))
    for r in REQUIRED:
        if r not in header:
            errors.append(LineError(1, f"column '{r}' is missing"))
    if errors:
        raise ImportRejected(errors)
    rows: list[tuple[int, dict[str, str]]] = []
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(LineError(start, f"not CSV: {exc}"))
            break
        line, start = start, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            errors.append(LineError(line, f"{len(values)} fields, but the header has {len(header)}"))
            continue
        rows.append((line, dict(zip(header, values))))
        if len(rows) > MAX_IMPORT_ROWS:
            errors.append(LineError(line, f"more than {MAX_IMPORT_ROWS} sites; split the file"))
            raise ImportRejected(errors, len(rows))
    return rows, errors


def import_csv(s: Session, text: str, actor: str) -> ImportResult:
    """Create or update (by code) every site of a CSV file, in ``s``'s transaction.

    All or nothing: any bad line raises :class:`ImportRejected` listing every problem with its
    line number, before anything is written (the caller's transaction then rolls back).
    """
    rows, errors = read_csv(text)
    checked: list[tuple[int, dict[str, Any]]] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        try:
            # Columns left out of the file keep what a site has (only a new site takes defaults).
            values = clean(row, partial=True)
        except SiteError as exc:
            errors.extend(LineError(line, f"{k}: {v}") for k, v in exc.errors.items())
            continue
        code = values["code"]
        if code in first_line:
            errors.append(LineError(line, f"code: site {code} is also on line {first_line[code]}"))
            continue
        first_line[code] = line
        checked.append((line, values))
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: e.line), len(rows))
    codes = [v["code"] for _, v in checked]
    existing: dict[str, Site] = {}
    for i in range(0, len(codes), 500):
        existing.update((site.code, site) for site in s.scalars(select(Site).where(Site.code.in_(codes[i:i + 500]))))
    result = ImportResult(rows=len(checked))
    # Each site created or changed has its own audit row (its page's history), as if made on its page, and the
    # import one row of its own: written in one statement, a chain's 500 shops cost little.
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for _, values in checked:
        code = values["code"]
        site = existing.get(code)
        if site is None:
            made = {**clean({"code": code, "name": values["name"]}), **values}
            s.add(Site(**made))
            result.created.append(code)
            rows.append(("site.create", f"site:{code}",
                         {**{k: v for k, v in made.items() if k != "code"}, "via": "CSV import"}))
        elif diff := changes(site, values):
            for k, v in values.items():
                setattr(site, k, v)
            result.updated.append(code)
            rows.append(("site.update", f"site:{code}", {"changes": diff, "via": "CSV import"}))
        else:
            result.unchanged += 1
    audit.record_many(s, actor, rows)
    audit.record(s, actor, "site.import", "sites:import", rows=result.rows, created=result.created,
                 updated=result.updated, unchanged=result.unchanged)
    return result
