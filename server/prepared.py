"""A press's few SQL statements, run on SQLite's own connection without the engine's layers.

A press runs about nine small statements. Through ``Session.execute`` each
costs some 200 µs of Python (execution context, result set-up, parameter
processing) around 30 µs in sqlite3 itself, which on a two-core machine caps
the server near 400 presses/s. A :class:`Statement` is plain SQL with named
parameters plus the model columns its parameters and results belong to, so
SQLAlchemy's own type conversions still apply (``UTCDateTime`` and ``JSON``
are stored exactly as the ORM stores them).

On SQLite, :class:`Statements` runs them on the DBAPI cursor inside the
session's transaction. On any other database, :class:`Runner` runs the same
SQL through ``Session.execute`` as ``text()`` with typed parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import Column, bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeEngine

Typed = Column[Any] | TypeEngine[Any]


def _type(t: Typed) -> TypeEngine[Any]:
    return t.type if isinstance(t, Column) else t


@dataclass
class Statement:
    """SQL with ``:name`` parameters; ``binds`` and ``columns`` name the types that need converting."""

    sql: str
    binds: dict[str, Typed] = field(default_factory=dict)
    columns: dict[str, Typed] = field(default_factory=dict)
    # The result column names, in order (only for statements that return rows).
    keys: tuple[str, ...] = ()
    _text: TextClause | None = None
    _processors: dict[str, tuple[list[tuple[str, Callable[[Any], Any]]], tuple[Any, ...]]] = field(
        default_factory=dict)

    def text(self) -> TextClause:
        if self._text is None:
            clause = text(self.sql).bindparams(*(bindparam(k, type_=_type(t)) for k, t in self.binds.items()))
            self._text = clause.columns(**{k: _type(t) for k, t in self.columns.items()}) if self.keys else clause
        return self._text

    def processors(self, dialect: Dialect) -> tuple[list[tuple[str, Callable[[Any], Any]]], tuple[Any, ...]]:
        """(bind processors by name, result processors by position) for ``dialect``, built once.

        ``dialect_impl`` first: SQLite's own DATETIME and JSON are what turn values into text and back.
        """
        cached = self._processors.get(dialect.name)
        if cached is None:
            binds = [(k, p) for k, t in self.binds.items() if (p := _type(t).dialect_impl(dialect).bind_processor(dialect)) is not None]
            results = tuple(_type(self.columns[k]).dialect_impl(dialect).result_processor(dialect, None) if k in self.columns else None
                            for k in self.keys)
            cached = self._processors[dialect.name] = (binds, results)
        return cached


def select_sql(sql: str, keys: str, binds: dict[str, Typed] | None = None,
               columns: dict[str, Typed] | None = None) -> Statement:
    """A SELECT whose result columns are ``keys`` (space-separated), in that order."""
    return Statement(sql, binds or {}, columns or {}, tuple(keys.split()))


def insert_sql(table: Any, keys: str) -> Statement:
    """``INSERT INTO table (keys) VALUES (...) RETURNING id`` typed by the table's columns."""
    names = keys.split()
    missing = [c.key for c in table.columns if c.key not in names and c.default is not None]
    if missing:  # Python-side defaults belong to the ORM, which this does not go through
        raise ValueError(f"INSERT into {table.name} must set {', '.join(missing)}")
    sql = (f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)}) "
           f"RETURNING id")
    return Statement(sql, {n: table.c[n] for n in names}, {}, ("id",))


class Statements:
    """Run :class:`Statement`\\ s on the session's sqlite3 connection, in its transaction."""

    def __init__(self, session: Session):
        connection = session.connection()
        self._dialect = connection.dialect
        self._cursor = connection.connection.driver_connection.cursor()

    def _execute(self, st: Statement, values: dict[str, Any]) -> Any:
        binds, _ = st.processors(self._dialect)
        if binds:
            values = dict(values)
            for name, process in binds:
                values[name] = process(values[name])
        return self._cursor.execute(st.sql, values)

    def _row(self, st: Statement, raw: tuple[Any, ...]) -> dict[str, Any]:
        _, results = st.processors(self._dialect)
        return {k: (p(v) if p is not None else v) for k, p, v in zip(st.keys, results, raw)}

    def first(self, st: Statement, values: dict[str, Any]) -> dict[str, Any] | None:
        # fetchall, not fetchone: a statement left unfinished would block the COMMIT.
        rows = self._execute(st, values).fetchall()
        return self._row(st, rows[0]) if rows else None

    def all(self, st: Statement, values: dict[str, Any]) -> list[dict[str, Any]]:
        return [self._row(st, raw) for raw in self._execute(st, values).fetchall()]

    def run(self, st: Statement, values: dict[str, Any]) -> None:
        self._execute(st, values).fetchall()  # runs an INSERT ... RETURNING to its end


class Runner:
    """The same interface through ``Session.execute`` (any database)."""

    def __init__(self, session: Session):
        self._session = session

    def first(self, st: Statement, values: dict[str, Any]) -> dict[str, Any] | None:
        row = self._session.execute(st.text(), values).mappings().first()
        return None if row is None else dict(row)

    def all(self, st: Statement, values: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(m) for m in self._session.execute(st.text(), values).mappings()]

    def run(self, st: Statement, values: dict[str, Any]) -> None:
        self._session.execute(st.text(), values)


def statements_for(session: Session, *, fast: bool = True) -> Statements | Runner:
    """The fast runner on SQLite (unless ``fast`` is False), the portable one elsewhere."""
    if fast and session.get_bind().dialect.name == "sqlite":
        return Statements(session)
    return Runner(session)
