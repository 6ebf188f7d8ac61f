"""traces.duckdb: compaction of spool segments, migrations, and the queries behind the CLI and
the Traces screen.

Every connection is short and taken under a file lock (exclusive to write, shared to read), so
several processes (the app, CLI runs, a reader) share the store without DuckDB lock errors.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from workbench.core import secrets
from workbench.core.errors import QueryError, TraceStoreError
from workbench.core.tracing.attributes import PROMOTED
from workbench.core.tracing.migrations import LATEST, SPAN_COLUMNS, current_version, migrate

__all__ = ["TraceStore"]

LOCK_TIMEOUT_S = 30.0
_STALE_TMP_S = 3600.0
_COLUMNS = ", ".join(SPAN_COLUMNS)
_CASTS = {
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "ttft_s": "DOUBLE",
    "cost_usd": "DOUBLE",
    "queue_wait_s": "DOUBLE",
}


def _segment_select() -> str:
    """SELECT list that turns segment rows into span rows, promoting the GenAI attributes.

    One json_extract_string call with a list of paths parses each attribute document once;
    nine separate calls parsed it nine times (1.5 us/span more on 2 cores).
    """
    paths = ", ".join(f"'$.\"{attribute}\"'" for attribute, _ in PROMOTED)
    promoted = {}
    for index, (_, column) in enumerate(PROMOTED, start=1):
        value = f"_promoted[{index}]"
        promoted[column] = f"TRY_CAST({value} AS {_CASTS[column]})" if column in _CASTS else value
    select = ", ".join(promoted.get(column, column) for column in SPAN_COLUMNS)
    return f"{select} FROM (SELECT *, json_extract_string(attributes, [{paths}]) AS _promoted FROM "


_SEGMENT_SELECT = _segment_select()


class TraceStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "traces.duckdb"
        self.wal_path = root / "traces.duckdb.wal"
        self.spool_dir = root / "spool"
        self.quarantine_dir = root / "quarantine"
        self.lock_path = root / ".traces.lock"
        self.warnings: list[str] = []
        self._checked_schema = False

    # -- locking and connections -------------------------------------------------------------

    @contextmanager
    def _locked(self, exclusive: bool, timeout: float) -> Iterator[bool]:
        """Hold the store's file lock; yields False if it could not be had within ``timeout``."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if exclusive:
                raise
            yield True  # a read-only workspace: nobody can be writing through us
            return
        try:
            mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.005)
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _connect(self, read_only: bool, config: dict | None = None) -> duckdb.DuckDBPyConnection:
        """Open traces.duckdb; a damaged WAL is moved to quarantine/ instead of being fatal."""
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        quarantined = False
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config=config or {})
                if not read_only:
                    secrets.private(self.path, self.wal_path)
                break
            except duckdb.IOException as exc:
                # Another program (say the duckdb shell) holds the file: wait for it, briefly.
                if "lock" in str(exc).lower() and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                locked = "lock" in str(exc).lower()
                raise TraceStoreError(
                    f"cannot open {self.path}: {_first_line(exc)}",
                    "close other programs that have traces.duckdb open, then retry"
                    if locked
                    else f"the file is damaged: move it aside (mv {self.path} {self.path}.damaged) and a new, "
                    "empty one is made (it held traces and eval results; collections and models live elsewhere)",
                ) from None
            except duckdb.Error as exc:
                if not quarantined and self.wal_path.exists():
                    self._quarantine_wal(exc)
                    quarantined = True
                    continue
                raise TraceStoreError(
                    f"cannot open {self.path}: {_first_line(exc)}",
                    "move traces.duckdb aside (it may be damaged or from another DuckDB version)",
                ) from None
        version = current_version(con)
        if version > LATEST:
            con.close()
            raise TraceStoreError(
                f"{self.path} was written by a newer workbench (schema {version}, this one "
                f"knows up to {LATEST})",
                "upgrade workbench, or use another workspace with --workspace",
            )
        if not read_only and version < LATEST:
            migrate(con)
        return con

    def _quarantine_wal(self, exc: Exception) -> None:
        self.quarantine_dir.mkdir(exist_ok=True)
        target = self.quarantine_dir / f"traces.duckdb.wal.{time.strftime('%Y%m%dT%H%M%S')}"
        os.replace(self.wal_path, target)
        self.warnings.append(
            f"the trace store's write-ahead log was damaged ({_first_line(exc)}); it was moved "
            f"to {target} and the store opened without it"
        )

    # -- compaction --------------------------------------------------------------------------

    def pending_segments(self) -> list[Path]:
        try:
            return sorted(self.spool_dir.glob("*.parquet"))
        except OSError:
            return []

    def compact(self, blocking: bool = True) -> int:
        """Move spooled segments into traces.duckdb; returns the number of spans moved.

        With ``blocking=False`` it gives up at once if another process is compacting.
        """
        if not self.pending_segments() and self.path.exists():
            return 0
        with self._locked(exclusive=True, timeout=LOCK_TIMEOUT_S if blocking else 0.0) as got:
            if not got:
                if blocking:
                    raise TraceStoreError("the trace store stayed busy for 30 s", "retry in a moment")
                return 0
            return self._compact_locked()

    def _compact_locked(self) -> int:
        segments = self.pending_segments()
        con = self._connect(read_only=False)
        moved = 0
        try:
            names = [p.name for p in segments]
            done = set()
            if names:
                done = {
                    row[0]
                    for row in con.execute(
                        "SELECT name FROM segments WHERE list_contains(?, name)", [names]
                    ).fetchall()
                }
            todo, bad = [], []
            for path in segments:
                if path.name in done:
                    continue
                try:
                    import pyarrow.parquet as pq  # on first use: most commands never compact

                    todo.append((path, pq.read_metadata(path).num_rows))
                except Exception:  # noqa: BLE001 - any unreadable segment is set aside
                    bad.append(path)
            if todo:
                con.execute("BEGIN")
                con.execute(
                    f"INSERT INTO spans ({_COLUMNS}) SELECT {_SEGMENT_SELECT} read_parquet(?))",
                    [[str(p) for p, _ in todo]],
                )
                con.executemany("INSERT INTO segments VALUES (?, ?, now())", [[p.name, n] for p, n in todo])
                con.execute("COMMIT")
                # Checkpoint before deleting segments: should the WAL later be damaged and
                # quarantined, the segments it held are still on disk and get ingested again.
                con.execute("CHECKPOINT")
                moved = sum(n for _, n in todo)
        finally:
            con.close()
        for path in segments:
            if path in bad:
                self._quarantine_segment(path)
            else:
                path.unlink(missing_ok=True)
        self._remove_stale_tmp()
        return moved

    def _quarantine_segment(self, path: Path) -> None:
        self.quarantine_dir.mkdir(exist_ok=True)
        os.replace(path, self.quarantine_dir / path.name)
        self.warnings.append(f"unreadable trace segment moved to {self.quarantine_dir / path.name}")

    def _remove_stale_tmp(self) -> None:
        # A process killed while writing a segment leaves a .tmp file that nobody will finish.
        now = time.time()
        for tmp in self.spool_dir.glob(".*.parquet.tmp"):
            try:
                if now - tmp.stat().st_mtime > _STALE_TMP_S:
                    tmp.unlink()
            except OSError:
                pass

    # -- other tables (eval runs and results) ----------------------------------------------

    def write(self, statements: list[tuple[str, list[Any]]]) -> None:
        """Run write statements in one transaction under the store's exclusive lock (the same
        lock compaction takes, so no other process has the file open for writing meanwhile)."""
        with self._locked(exclusive=True, timeout=LOCK_TIMEOUT_S) as got:
            if not got:
                raise TraceStoreError("the trace store stayed busy for 30 s", "retry in a moment")
            con = self._connect(read_only=False)
            try:
                con.execute("BEGIN")
                for sql, params in statements:
                    if params and isinstance(params[0], list | tuple):
                        con.executemany(sql, params)
                    else:
                        con.execute(sql, params)
                con.execute("COMMIT")
            finally:
                con.close()

    def query(self, sql: str, params: list[Any] | None = None, compact: bool = True) -> list[dict[str, Any]]:
        """Rows of a parameterized read as dicts (for the service layer's own queries).
        ``compact=False`` reads what is in the store now, without waiting to move the spool in."""
        with self.reader(compact=compact) as con:
            return _dicts(con.execute(sql, params or []))

    # -- reading -----------------------------------------------------------------------------

    @contextmanager
    def reader(self, config: dict | None = None, compact: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short read-only connection that sees every span flushed so far (with ``compact``)."""
        try:
            if compact:
                self.compact(blocking=True)
        except OSError:
            pass  # a read-only workspace: read what is there
        if not self._checked_schema and self.path.exists():
            self._migrate_if_needed()
        if not self.path.exists():
            con = duckdb.connect(":memory:")
            migrate(con)
            try:
                yield con
            finally:
                con.close()
            return
        with self._locked(exclusive=False, timeout=LOCK_TIMEOUT_S) as got:
            if not got:
                raise TraceStoreError("the trace store stayed busy for 30 s", "retry in a moment")
            con = self._connect(read_only=True, config=config)
            try:
                yield con
            finally:
                con.close()

    def _migrate_if_needed(self) -> None:
        """Bring an older database up to date once per process, under the exclusive lock."""
        try:
            with self._locked(exclusive=True, timeout=LOCK_TIMEOUT_S) as got:
                if got:
                    self._connect(read_only=False).close()
                    self._checked_schema = True
        except OSError:
            pass  # a read-only workspace: read it as it is

    def schema_version(self) -> int:
        with self.reader() as con:
            return current_version(con)

    def stats(self) -> dict[str, Any]:
        with self.reader() as con:
            spans, traces = _one(con.execute("SELECT count(*), count(DISTINCT trace_id) FROM spans"))
            version = current_version(con)
        return {
            "spans": spans,
            "traces": traces,
            "schema_version": version,
            "pending_segments": len(self.pending_segments()),
            "size_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "warnings": list(self.warnings),
        }

    def list_traces(
        self, limit: int = 50, offset: int = 0, filters: dict[str, str] | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of traces, newest first, and the total that match the filters."""
        # Not `SELECT * FROM traces ... LIMIT`: the view's aggregates (names, distinct models)
        # over every span cost 350 ms at 500,000 spans. The page's ids come from a cheap
        # grouping, and only those traces get the full summary: 25 ms.
        having, params = _having(filters or {})
        matching = f"SELECT trace_id, min(start_ns) AS start_ns FROM spans GROUP BY trace_id {having}"
        with self.reader() as con:
            total = _one(con.execute(f"SELECT count(*) FROM ({matching})", params))[0]
            cursor = con.execute(
                f"""WITH page AS ({matching} ORDER BY start_ns DESC, trace_id LIMIT ? OFFSET ?),
                summary AS (SELECT {_TRACE_SUMMARY} FROM spans WHERE trace_id IN (SELECT trace_id FROM page)
                            GROUP BY trace_id),
                feedback AS (SELECT trace_id, count(*) FILTER (WHERE value > 0) AS up,
                                    count(*) FILTER (WHERE value < 0) AS down
                             FROM scores WHERE name = 'feedback' AND trace_id IN (SELECT trace_id FROM page)
                             GROUP BY trace_id)
                SELECT summary.*, coalesce(feedback.up, 0) AS feedback_up, coalesce(feedback.down, 0) AS feedback_down
                FROM summary LEFT JOIN feedback USING (trace_id) ORDER BY start_ns DESC, trace_id""",
                [*params, limit, offset],
            )
            return _dicts(cursor), total

    def get_trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span of the trace whose id is ``trace_id`` or starts with it."""
        if not trace_id or not all(c in "0123456789abcdef" for c in trace_id.lower()):
            raise QueryError(f"'{trace_id}' is not a trace id", "copy one from `workbench traces list`")
        with self.reader() as con:
            if len(trace_id) == 32:  # a whole id (the app's case): one scan, not two
                ids = [(trace_id.lower(),)]
            else:
                ids = con.execute(
                    "SELECT DISTINCT trace_id FROM spans WHERE starts_with(trace_id, ?) LIMIT 2",
                    [trace_id.lower()],
                ).fetchall()
            if not ids:
                raise QueryError(f"no trace {trace_id}", "list traces with `workbench traces list`")
            if len(ids) > 1:
                raise QueryError(f"'{trace_id}' matches several traces", "give more of the id")
            cursor = con.execute(
                "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", [ids[0][0]]
            )
            spans = _dicts(cursor)
            if not spans:
                raise QueryError(f"no trace {trace_id}", "list traces with `workbench traces list`")
            return spans

    def add_score(
        self,
        trace_id: str,
        name: str,
        value: float,
        note: str | None,
        source: str,
        author: str,
        subject: str | None = None,
    ) -> None:
        """Record a score (a user's verdict on an answer, say) on a trace; a trace keeps them all.
        ``subject`` names which answer of the trace it rates, when it holds several (Compare)."""
        self.write(
            [
                (
                    "INSERT INTO scores (trace_id, name, value, note, source, author, created_ns, subject) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [trace_id, name, value, note, source, author, time.time_ns(), subject],
                )
            ]
        )

    def scores_of(self, trace_ids: list[str]) -> list[dict[str, Any]]:
        """Every score of the given full trace ids, oldest first."""
        with self.reader() as con:
            cursor = con.execute(
                "SELECT * FROM scores WHERE list_contains(?, trace_id) ORDER BY trace_id, created_ns",
                [trace_ids],
            )
            return _dicts(cursor)

    def trace_ids(
        self, since_ns: int | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[str]:
        """Full ids of the newest traces that started after ``since_ns`` and, with ``workflow``,
        ran that workflow."""
        clauses, params = [], []
        if since_ns is not None:
            clauses.append("start_ns >= ?")
            params.append(since_ns)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        having = "HAVING bool_or(workflow = ?)" if workflow else ""
        with self.reader() as con:
            cursor = con.execute(
                f"SELECT trace_id FROM spans {where} GROUP BY trace_id {having} "
                "ORDER BY min(start_ns) DESC LIMIT ?",
                [*params, *([workflow] if workflow else []), limit],
            )
            return [row[0] for row in cursor.fetchall()]

    def spans_of(self, trace_ids: list[str]) -> list[dict[str, Any]]:
        """Every span of the given full trace ids, in one query (for exports)."""
        with self.reader() as con:
            cursor = con.execute(
                "SELECT * FROM spans WHERE list_contains(?, trace_id) ORDER BY trace_id, start_ns",
                [trace_ids],
            )
            return _dicts(cursor)

    def sql(
        self, query: str, limit: int = 10_000, timeout_s: float | None = None
    ) -> tuple[list[str], list[tuple]]:
        """Run a read-only query; no file outside the store can be read or written by it.
        ``timeout_s``: interrupt it past this long (DuckDB has no statement timeout of its own)."""
        with self.reader(config={"enable_external_access": False}) as con:
            timer = threading.Timer(timeout_s, con.interrupt) if timeout_s else None
            if timer is not None:
                timer.daemon = True
                timer.start()
            try:
                cursor = con.execute(query)
                if cursor.description is None:
                    return [], []
                columns = [d[0] for d in cursor.description]
                return columns, cursor.fetchmany(limit)
            except duckdb.InterruptException:
                raise QueryError(
                    f"the query ran past {timeout_s:g} s and was stopped",
                    "ask for less: filter, or aggregate",
                ) from None
            except duckdb.Error as exc:
                raise QueryError(
                    _first_line(exc), "check the SQL; tables: spans, traces, schema_migrations"
                ) from None
            finally:
                if timer is not None:
                    timer.cancel()


# The columns of the `traces` view (migration 2), for the summary of one page of traces.
_TRACE_SUMMARY = """trace_id,
    coalesce(arg_min(name, start_ns) FILTER (WHERE parent_id IS NULL), arg_min(name, start_ns)) AS name,
    min(start_ns) AS start_ns, max(end_ns) AS end_ns, (max(end_ns) - min(start_ns)) / 1e6 AS duration_ms,
    count(*) AS spans, CASE WHEN bool_or(status = 'error') THEN 'error'
        WHEN bool_or(status = 'cancelled') THEN 'cancelled' ELSE 'ok' END AS status,
    string_agg(DISTINCT model, ',' ORDER BY model) AS models, sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd"""


def _having(filters: dict[str, str]) -> tuple[str, list[Any]]:
    """The Traces filters (name, model, status, text in a prompt or answer) as a HAVING over
    spans grouped by trace."""
    clauses, params = [], []
    if filters.get("name"):
        clauses.append(
            "coalesce(arg_min(name, start_ns) FILTER (WHERE parent_id IS NULL), arg_min(name, start_ns)) ILIKE ?"
        )
        params.append(f"%{filters['name']}%")
    if filters.get("model"):
        clauses.append("coalesce(bool_or(model ILIKE ?), false)")
        params.append(f"%{filters['model']}%")
    if filters.get("text"):
        clauses.append("coalesce(bool_or(payload ILIKE ?), false)")
        params.append(f"%{filters['text']}%")
    if filters.get("status"):
        status = filters["status"].lower()
        clauses.append(
            {
                "error": "bool_or(status = 'error')",
                "cancelled": "bool_or(status = 'cancelled') AND NOT bool_or(status = 'error')",
                "ok": "NOT bool_or(status IN ('error', 'cancelled'))",
            }.get(status, "false")
        )
    return ("HAVING " + " AND ".join(clauses)) if clauses else "", params


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _one(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The one row an aggregate query returns."""
    row = cursor.fetchone()
    assert row is not None, "an aggregate without GROUP BY returns one row"
    return row
