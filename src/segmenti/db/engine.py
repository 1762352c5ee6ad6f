"""Engines and sessions for both backends.

SQLite: WAL so readers never wait for the writer, a busy timeout so writers queue
instead of failing, and write transactions opened with BEGIN IMMEDIATE. A deferred
transaction that reads first and writes later cannot wait for the lock: SQLite fails
it at once with "database is locked" when another writer got in between, whatever
the busy timeout. Taking the write lock up front turns that into a plain wait.

PostgreSQL: a bounded pool per process (`segmenti serve --workers N` opens up to N x
(db_pool_size + db_max_overflow) connections: keep that under the server's
max_connections), a ping on checkout of a connection idle for more than a second
(`_ping_when_idle`), so that connections dropped by a server restart are replaced instead
of failing a request, and READ COMMITTED set explicitly whatever the server's
default_transaction_isolation: the count maintenance relies on it (membership/counts.py).
A contact write that waited for a user's row lock must then see the segment definitions
committed meanwhile; under REPEATABLE READ or SERIALIZABLE the same wait would end in a
serialization failure, a 500.

Statement timeout: no statement of the server runs longer than
`statement_timeout_seconds` (the CLI's imports and recounts: `cli_statement_timeout_seconds`,
none by default; `Database(..., statement_timeout_seconds=)` says which). PostgreSQL
enforces it itself (`statement_timeout`, set when each connection opens): it cancels the
statement, so the backend is free again at once, not when the client notices. SQLite has
no such setting: a watchdog thread interrupts (`sqlite3_interrupt`) a statement still
running at its deadline (`_Deadlines`); an interrupted write rolls its transaction back
and lets go of the write lock. Either way the statement fails with an error
`timed_out` recognises, which the API answers 503 (http.py).

Statistics: every write transaction's rows are counted, and the tables it changed by a
large share analyzed once it has committed (statistics.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from segmenti.db import statistics
from segmenti.settings import Settings

# Execution option read by the "begin" hook below: which BEGIN a SQLite transaction uses.
_SQLITE_BEGIN = "segmenti_sqlite_begin"
# SQLite's own default: a commit that leaves the log this many pages long checkpoints it.
WAL_AUTOCHECKPOINT = 1000


def make_engine(settings: Settings, *, statement_timeout_seconds: float = 0) -> Engine:
    """The engine `settings` describe; statements run at most `statement_timeout_seconds`
    (0: no limit)."""
    if settings.is_sqlite:
        engine = _sqlite_engine(settings)
        if statement_timeout_seconds > 0:
            _Deadlines(statement_timeout_seconds).install(engine)
        return engine
    # Always set, 0 included: the setting is the one source of the limit, whatever the
    # role's or the server's default says. After the URL's own `options` (connect_args
    # replace the URL's query argument of the same name), so that they are kept.
    timeout_ms = max(0, round(statement_timeout_seconds * 1000))
    given = make_url(settings.database_url).query.get("options", ())
    options = [*([given] if isinstance(given, str) else given)]
    options.append(f"-c statement_timeout={timeout_ms}")
    engine = create_engine(
        settings.database_url,
        isolation_level="READ COMMITTED",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # Under the idle timeouts of most poolers and firewalls.
        pool_recycle=1800,
        # Names the connections in pg_stat_activity.
        connect_args={
            "application_name": "segmenti",
            "options": " ".join(options),
        },
    )
    _ping_when_idle(engine)
    return engine


# When a pooled connection was last handed back (connection_record.info).
_IDLE_SINCE = "segmenti_idle_since"
# A connection idle for longer than this is pinged before it is handed out again.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pool_pre_ping, for connections idle more than a second only.

    pre_ping pings on every checkout: a round trip per request (two with the key's
    look-up), a tenth of a contact write on PostgreSQL. A connection the server dropped
    (a restart, an idle timeout) has nearly always sat idle for longer than a second
    before, so pinging those keeps what pre_ping is for; one dropped within the second
    fails its request as it would have without the ping. A failed ping raises
    DisconnectionError, which makes the pool discard the connection and check out
    another (a fresh one is not pinged)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


def _sqlite_engine(settings: Settings) -> Engine:
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        settings.database_url,
        connect_args={
            "check_same_thread": False,
            "timeout": settings.sqlite_busy_timeout_ms / 1000,
        },
    )
    busy_timeout = int(settings.sqlite_busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite's own
        # transaction handling would always use a deferred BEGIN).
        dbapi_connection.isolation_level = None
        # SQLite's own lower() folds ASCII only, so a case-insensitive `search` would miss
        # "ÉLITE" for "élite"; Python's is Unicode-aware, like PostgreSQL's.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # NORMAL is durable across application crashes in WAL mode; only a power loss
        # can drop the last transactions, never corrupt the file.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _restore(connection: Any, driver: Any, schema: str) -> Exception | None:
    """`write_attached`'s connection back as every other connection of the pool has it:
    foreign keys checked, checkpoints at commit, nothing attached. If that fails, the
    connection is discarded instead of pooled, and the error returned."""
    try:
        driver.execute("PRAGMA foreign_keys = ON")
        driver.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
        driver.execute(f"DETACH DATABASE {schema}")
        # (PRAGMA foreign_keys is silently ignored inside a transaction left open.)
        if driver.execute("PRAGMA foreign_keys").fetchone() != (1,):
            raise RuntimeError("foreign key checks could not be turned back on")
    except Exception as exc:
        connection.invalidate()
        return exc
    return None


def timed_out(exc: BaseException) -> bool:
    """The statement ran past the statement timeout and was cancelled (PostgreSQL's
    query_canceled, or SQLite's interrupt, which only `_Deadlines` sends)."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) == "57014":
        return True
    return str(exc.orig) == "interrupted"


class _Deadlines:
    """SQLite's statement timeout: each statement is registered with its deadline when
    it starts and dropped when it returns; a watchdog thread interrupts the connection
    of one still registered past its deadline. Registering and interrupting share a
    lock, so a statement that has returned is never interrupted (nor the next one).

    The deadline covers the statement's execution up to its first row, which is where
    a count, sort or write does all its work; rows fetched later (a streamed export)
    are paced by the client, and not limited."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(0.25, seconds / 4)
        self._lock = threading.Lock()
        self._running: dict[int, tuple[float, Any]] = {}
        self._thread: threading.Thread | None = None

    def install(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._started)
        event.listen(engine, "after_cursor_execute", self._ended)
        event.listen(engine, "handle_error", self._failed)

    def _started(self, conn: Any, *_args: Any) -> None:
        driver = conn.connection.driver_connection
        with self._lock:
            self._running[id(driver)] = (time.monotonic() + self.seconds, driver)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="segmenti-statement-timeout", daemon=True
                )
                self._thread.start()

    def _ended(self, conn: Any, *_args: Any) -> None:
        with self._lock:
            self._running.pop(id(conn.connection.driver_connection), None)

    def _failed(self, context: Any) -> None:
        if context.connection is not None:
            self._ended(context.connection)

    def _watch(self) -> None:
        """Runs while statements are registered; the next one starts it again."""
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                for key, (deadline, driver) in list(self._running.items()):
                    if now >= deadline:
                        del self._running[key]
                        with contextlib.suppress(Exception):  # closed meanwhile
                            driver.interrupt()
                if not self._running:
                    self._thread = None
                    return


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class Database:
    """The engine plus two session factories: reads, and writes that lock up front."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        *,
        statement_timeout_seconds: float | None = None,
    ) -> None:
        """`statement_timeout_seconds`: the longest a statement may run (0: no limit);
        by default the server's, `settings.statement_timeout_seconds`. The commands pass
        `settings.cli_statement_timeout_seconds` (cli/support.py)."""
        self.settings = settings
        if statement_timeout_seconds is None:
            statement_timeout_seconds = settings.statement_timeout_seconds
        self.statement_timeout_seconds = statement_timeout_seconds
        self.engine = engine or make_engine(
            settings, statement_timeout_seconds=statement_timeout_seconds
        )
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_engine = (
            self.engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            if self.is_sqlite
            else self.engine
        )
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL: no transaction at all. psycopg sends BEGIN as a round trip of its
        # own and the session's end a ROLLBACK: three round trips for one indexed read.
        self._look_up = (
            self._read
            if self.is_sqlite
            else sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        )
        self._write_engine = write_engine
        self._write = sessionmaker(write_engine, expire_on_commit=False)
        self.statistics = statistics.Statistics(self.engine, write_engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def look_up(self) -> Iterator[Session]:
        """For a single read that needs no snapshot shared with another statement (a
        request's API key): on PostgreSQL in autocommit, so that the read is its one
        round trip. On SQLite a read transaction costs no round trip: as `read`."""
        with self._look_up() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.
        Once committed, the tables it changed by a large share are analyzed."""
        with statistics.collecting() as written, self._write() as session, session.begin():
            yield session
        self.statistics.after_commit(written)

    @contextmanager
    def write_attached(self, *, schema: str, path: Path, bulk: bool = False) -> Iterator[Session]:
        """A write transaction (as `write`) on SQLite with the database file `path`
        attached as `schema` for its duration (a CSV import's staged batch). ATTACH and
        DETACH cannot run inside a transaction, so they are issued on the connection
        just before the transaction begins and just after it ends.

        `bulk`, for a writer whose rows satisfy the foreign keys by construction and
        that runs `background_checkpoints`: no foreign key checks, and no checkpoint
        at commit (the background thread does it)."""
        if not self.is_sqlite:
            raise ValueError("only SQLite attaches database files")
        if not schema.isidentifier():
            raise ValueError(f"not a schema name: {schema!r}")
        with statistics.collecting() as written, self._write_engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute(f"ATTACH DATABASE ? AS {schema}", (str(path),))
            if bulk:
                driver.execute("PRAGMA foreign_keys = OFF")
                driver.execute("PRAGMA wal_autocheckpoint = 0")
            try:
                with Session(connection, expire_on_commit=False) as session, session.begin():
                    yield session
            except BaseException:
                _restore(connection, driver, schema)  # the block's error is the one to see
                raise
            failed = _restore(connection, driver, schema)
            if failed is not None:
                raise failed
        self.statistics.after_commit(written)

    @contextmanager
    def background_checkpoints(self, *, every: float = 0.2) -> Iterator[None]:
        """SQLite: while the block runs, a thread with its own connection copies the
        write-ahead log into the database file every `every` seconds. PASSIVE
        checkpoints never wait for nor block a writer, and the copying runs on another
        core than the block's (`sqlite3` lets go of the GIL while SQLite works)."""
        if self.settings.sqlite_path() is None:  # other backends; memory has no log
            yield
            return
        stop = threading.Event()
        # A connection of the engine's own pool: the same file, whatever the URL says.
        connection = self.engine.raw_connection()

        def checkpoint() -> None:
            driver = connection.driver_connection
            assert driver is not None
            while not stop.wait(every):
                driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)")

        thread = threading.Thread(target=checkpoint, name="segmenti-checkpoint", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            connection.close()

    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """A transaction the database itself refuses to write in (previews): SQLite's
        query_only for this connection, PostgreSQL's READ ONLY transaction."""
        with self._read() as session:
            if self.is_sqlite:
                session.execute(text("PRAGMA query_only = ON"))
            else:
                session.execute(text("SET TRANSACTION READ ONLY"))
            try:
                yield session
            finally:
                if self.is_sqlite:
                    # Before the rollback, on this very connection: once rolled back, the
                    # session returns it to the pool and a later execute would check out
                    # (and unlock) another one, leaving this one read-only for the next
                    # writer that gets it.
                    session.connection().exec_driver_sql("PRAGMA query_only = OFF")
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
