"""A durable ledger of asynchronous inference jobs: SQLite from the standard library.

Every job is recorded *before* ``InvokeEndpointAsync`` is called (state ``submitting``,
with the request needed to send it again), then ``pending`` with its ``InferenceId``,
output and failure locations, then ``completed`` (the output body kept), ``failed``
(the failure text kept) or ``expired``. Each job's model configuration is kept as
``to_config()`` (never secrets), so the ledger alone is enough to wait.

Several processes may use one file: WAL mode, a busy timeout, short transactions, and
every state change is conditional (``UPDATE ... WHERE state IN (...)``), so a job is
completed once, by whoever saw it first, and never goes back. The schema is versioned
(table ``meta``); a newer file is refused rather than misread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from sm_llm.errors import ConfigurationError

__all__ = ["FINISHED", "SCHEMA_VERSION", "JobLedger", "JobState", "LedgerEntry", "Outcome"]

JobState = Literal["submitting", "pending", "completed", "failed", "expired"]
FINISHED: tuple[JobState, ...] = ("completed", "failed", "expired")
SCHEMA_VERSION = 1
_CHUNK = 500  # ids per "IN (...)": under SQLite's smallest variable limit (999)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (id INTEGER PRIMARY KEY, config TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL UNIQUE,
    model INTEGER NOT NULL REFERENCES models(id),
    state TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    params TEXT NOT NULL,
    body BLOB,
    stop TEXT,
    config TEXT NOT NULL,
    inference_id TEXT NOT NULL,
    input_location TEXT,
    output_location TEXT,
    failure_location TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    output BLOB,
    content_type TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_inference_id ON jobs(inference_id);
"""
_COLUMNS = (
    "seq, id, key, model, state, endpoint, params, body, stop, config, inference_id, input_location, "
    "output_location, failure_location, created, updated, attempts, output, content_type, error"
)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One job as the ledger holds it."""

    seq: int
    id: str
    key: str
    model: int
    state: JobState
    endpoint: str
    params: dict[str, Any]
    """The ``InvokeEndpointAsync`` parameters (without an inline ``Body``)."""
    body: bytes | None
    """The inline body, when the input was not uploaded."""
    stop: list[str] | None
    config: dict[str, Any]
    """The job's ``AsyncInferenceConfig`` fields."""
    inference_id: str
    input_location: str | None
    output_location: str | None
    failure_location: str | None
    created: float
    updated: float
    attempts: int
    """How many times ``InvokeEndpointAsync`` was (or may have been) called."""
    output: bytes | None
    content_type: str | None
    error: str | None

    @property
    def finished(self) -> bool:
        """``completed``, ``failed`` or ``expired``."""
        return self.state in FINISHED

    def summary(self) -> dict[str, Any]:
        """What ``sm-llm job list`` prints: no bodies."""
        return {
            "job_id": self.id, "key": self.key, "state": self.state, "endpoint_name": self.endpoint,
            "inference_id": self.inference_id, "output_location": self.output_location,
            "attempts": self.attempts, "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """A job's final state, for :meth:`JobLedger.finish_many`."""

    job_id: str
    state: JobState
    output: bytes | None = None
    content_type: str | None = None
    error: str | None = None


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    (seq, id_, key, model, state, endpoint, params, body, stop, config, inference_id, input_location,
     output_location, failure_location, created, updated, attempts, output, content_type, error) = row
    return LedgerEntry(
        seq, id_, key, model, state, endpoint, json.loads(params), body, json.loads(stop) if stop else None,
        json.loads(config), inference_id, input_location, output_location, failure_location, created,
        updated, attempts, output, content_type, error,
    )


def new_job_id() -> str:
    """A ledger job id: 24 hex digits (with ``.out`` it fits ``Filename``'s 32 characters)."""
    return uuid.uuid4().hex[:24]


class JobLedger:
    """Asynchronous inference jobs in an SQLite file (created if missing).

    ``JobLedger("jobs.db")``; pass it to ``submit(..., ledger=...)`` and
    ``wait_all(ledger)``, or use ``sm-llm job ... --ledger jobs.db``. Safe to share between
    threads and processes. ``resubmit_after``: seconds a job left in ``submitting`` (its
    process died around ``InvokeEndpointAsync``) must show nothing in S3 before it is sent
    again.
    """

    def __init__(self, path: str | Path, *, resubmit_after: float = 120.0) -> None:
        self.path = Path(path)
        self.resubmit_after = float(resubmit_after)
        self.adapters: dict[int, Any] = {}
        """The adapters this process submitted with, by model id (others are rebuilt from
        their stored configuration)."""
        self._lock = threading.RLock()
        self._models: dict[str, int] = {}
        try:
            # prompts and outputs are kept: the file (and its -wal/-shm, which SQLite creates
            # with the same mode) is the owner's alone
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise ConfigurationError(f"cannot create the job ledger {self.path}: {exc.strerror or exc}") from exc
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=60.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a killed process loses nothing in WAL mode
            self._db.execute("PRAGMA foreign_keys=ON")
            with self._write() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                found = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if found is None:
                    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(found[0]) > SCHEMA_VERSION:
                    raise ConfigurationError(
                        f"{self.path} is a job ledger of schema version {found[0]}; this sm_llm "
                        f"reads version {SCHEMA_VERSION}: upgrade sm_llm"
                    )
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the job ledger {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"JobLedger({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (``BEGIN IMMEDIATE``: the write lock up front)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # -- models ------------------------------------------------------------------------

    def model_id(self, config: Mapping[str, Any]) -> int:
        """The id of a model configuration (``to_config()``), stored once."""
        text = json.dumps(dict(config), sort_keys=True, default=str)
        known = self._models.get(text)  # rows of models are never changed nor removed
        if known is not None:
            return known
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO models (config) VALUES (?)", (text,))
            model = self._models[text] = int(db.execute("SELECT id FROM models WHERE config=?", (text,)).fetchone()[0])
            return model

    def model_config(self, model: int) -> dict[str, Any]:
        """The model configuration stored under ``model``."""
        rows = self._read("SELECT config FROM models WHERE id=?", (model,))
        if not rows:
            raise ConfigurationError(f"{self.path} has no model {model}")
        return dict(json.loads(rows[0][0]))

    # -- jobs --------------------------------------------------------------------------

    def add(
        self, *, job_id: str, key: str, model: int, endpoint: str, params: Mapping[str, Any],
        body: bytes | None, stop: list[str] | None, config: Mapping[str, Any], inference_id: str,
        input_location: str | None, output_location: str | None = None, failure_location: str | None = None,
    ) -> LedgerEntry | None:
        """Record a job in ``submitting``; ``None`` if ``key`` is already recorded."""
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO jobs (id, key, model, state, endpoint, params, body, stop, config, "
                "inference_id, input_location, output_location, failure_location, created, updated) "
                "VALUES (?, ?, ?, 'submitting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, key, model, endpoint, json.dumps(dict(params)), body,
                 json.dumps(stop) if stop else None, json.dumps(dict(config)), inference_id,
                 input_location, output_location, failure_location, now, now),
            )
            if cursor.rowcount == 0:
                return None
        return self.get(job_id)

    def get(self, job_id: str) -> LedgerEntry | None:
        """The job ``job_id`` (its ledger id), or ``None``."""
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,))
        return _entry(rows[0]) if rows else None

    def by_key(self, key: str) -> LedgerEntry | None:
        """The job recorded under ``key``, or ``None``."""
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE key=?", (key,))
        return _entry(rows[0]) if rows else None

    def by_inference_id(self, inference_id: str) -> list[LedgerEntry]:
        """The jobs with this ``InferenceId``."""
        return [_entry(r) for r in self._read(f"SELECT {_COLUMNS} FROM jobs WHERE inference_id=?", (inference_id,))]

    def entries(self, states: tuple[JobState, ...] | None = None) -> list[LedgerEntry]:
        """Jobs in submission order (only those in ``states`` when given)."""
        if states is None:
            return [_entry(r) for r in self._read(f"SELECT {_COLUMNS} FROM jobs ORDER BY seq")]
        marks = ",".join("?" * len(states))
        return [_entry(r) for r in self._read(f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY seq", states)]

    def _rows_by_id(self, columns: str, job_ids: list[str]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(job_ids), _CHUNK):
            chunk = job_ids[start : start + _CHUNK]
            rows += self._read(f"SELECT {columns} FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk))
        return rows

    def entries_by_id(self, job_ids: list[str]) -> list[LedgerEntry]:
        """The jobs ``job_ids``, in that order (unknown ids left out)."""
        found = {e.id: e for e in map(_entry, self._rows_by_id(_COLUMNS, job_ids))}
        return [found[i] for i in job_ids if i in found]

    def states(self, job_ids: Iterable[str] | None = None) -> dict[str, JobState]:
        """Every job's state, by job id (one cheap query); only ``job_ids``' when given
        (a window of a large ledger: no full scan)."""
        rows = self._read("SELECT id, state FROM jobs") if job_ids is None else self._rows_by_id("id, state", list(job_ids))
        return {str(i): s for i, s in rows}

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        return {str(s): int(n) for s, n in self._read("SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    def __len__(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM jobs")[0][0])

    # -- transitions (each conditional: the first writer wins) ----------------------------

    def accepted(self, job_id: str, inference_id: str, output_location: str, failure_location: str | None) -> bool:
        """``submitting`` → ``pending``: SageMaker took the job."""
        with self._write() as db:
            return db.execute(
                "UPDATE jobs SET state='pending', inference_id=?, output_location=?, failure_location=?, "
                "updated=? WHERE id=? AND state='submitting'",
                (inference_id, output_location, failure_location, time.time(), job_id),
            ).rowcount == 1

    def finish(
        self, job_id: str, state: JobState, *, output: bytes | None = None,
        content_type: str | None = None, error: str | None = None,
    ) -> bool:
        """An unfinished job → ``state`` (``completed`` / ``failed`` / ``expired``); False when
        another writer finished it first."""
        if state not in FINISHED:
            raise ValueError(f"not a final state: {state}")
        with self._write() as db:
            return db.execute(
                "UPDATE jobs SET state=?, output=?, content_type=?, error=?, updated=? "
                "WHERE id=? AND state IN ('submitting', 'pending')",
                (state, output, content_type, error, time.time(), job_id),
            ).rowcount == 1

    def finish_many(self, outcomes: list[Outcome]) -> list[bool]:
        """:meth:`finish` for several jobs in one transaction; for each, False when another
        writer finished it first."""
        if any(o.state not in FINISHED for o in outcomes):
            raise ValueError("not a final state")
        now = time.time()
        with self._write() as db:
            return [
                db.execute(
                    "UPDATE jobs SET state=?, output=?, content_type=?, error=?, updated=? "
                    "WHERE id=? AND state IN ('submitting', 'pending')",
                    (o.state, o.output, o.content_type, o.error, now, o.job_id),
                ).rowcount == 1
                for o in outcomes
            ]

    def claim_resubmit(self, entry: LedgerEntry) -> bool:
        """Count one more attempt of a ``submitting`` job, if nobody did since ``entry`` was
        read; True: the caller sends it again."""
        with self._write() as db:
            return db.execute(
                "UPDATE jobs SET attempts=attempts+1, updated=? WHERE id=? AND state='submitting' AND attempts=?",
                (time.time(), entry.id, entry.attempts),
            ).rowcount == 1

    def forget(self, job_id: str) -> None:
        """Remove a ``submitting`` job that SageMaker refused (nothing to wait for)."""
        with self._write() as db:
            db.execute("DELETE FROM jobs WHERE id=? AND state='submitting'", (job_id,))

    def output_dirs(self, endpoint: str) -> tuple[str | None, str | None]:
        """The output and failure folders SageMaker used for ``endpoint`` (learnt from an
        accepted job), so a job whose acceptance was never recorded can be looked for."""
        rows = self._read(
            "SELECT output_location, failure_location, params FROM jobs WHERE endpoint=? "
            "AND state != 'submitting' AND output_location IS NOT NULL ORDER BY seq DESC LIMIT 1",
            (endpoint,),
        )
        if not rows:
            return None, None
        output, failure, params = rows[0]
        filename = json.loads(params).get("Filename")
        if not filename or not str(output).endswith("/" + filename):
            return None, None
        out_dir = str(output)[: -len(filename)]
        stem = filename.split(".", 1)[0]
        fail_dir = str(failure)[: -len(stem + "-error.out")] if failure and str(failure).endswith(stem + "-error.out") else None
        return out_dir, fail_dir
