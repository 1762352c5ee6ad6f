"""The benchmark suite: exact live counts at a million contacts (issue 6).

    make bench                       # 1M contacts, 1,000 segments (about 10 minutes)
    make bench QUICK=1               # 100k contacts, 100 segments
    .venv/bin/python -m bench.run --contacts 200000 --segments 300

Builds its own data from a fixed seed into a fresh database (SQLite under var/bench/,
or a new database on the PostgreSQL server that SEGMENTI_DATABASE_URL names), starts a
real `segmenti serve` process on loopback and measures it over HTTP. Every figure sits
beside baselines measured in the same run on the same data:
  * floor: one hand-written SQL statement doing the same work, straight on the database;
  * naive: the design without maintained counts (count by scanning on every read).
Prints a table with ratios and writes JSON and Markdown to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, make_url, select, text

from bench import bench_events, bench_search, bench_trees, csv_import, data, http_client
from segmenti import auth
from segmenti.db import distribution, migrate
from segmenti.db.engine import Database
from segmenti.db.tables import segments
from segmenti.membership import counts, filters
from segmenti.paging import Page
from segmenti.phones import normalize_phone
from segmenti.segments import recount, service
from segmenti.segments.service import BulkNumbers, SegmentInput
from segmenti.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"

# The two filters of item 1, written three ways: through the API, by hand over the
# parameter index (floor), and over the JSON column (naive: no parameter index). The
# joins name user_id, as the product's do: on Citus that keeps each join in one shard.
ONE_CONDITION = filters.Filter(conditions=(filters.Condition("plan", "exact", "pro"),))
FIVE_CONDITIONS = filters.Filter(
    conditions=(
        filters.Condition("plan", "exact", "pro"),
        filters.Condition("age", "bigger_than", "25"),
        filters.Condition("age", "lower_than", "60"),
        filters.Condition("city", "not_exact", "roma"),
        filters.Condition("language", "starts_with", "it"),
    )
)
FLOOR_ONE = """
SELECT COUNT(*) FROM contact_parameters p
JOIN contacts c ON c.user_id = p.user_id AND c.id = p.contact_id
WHERE p.user_id = :user AND p.key = 'plan' AND p.value_folded = 'pro' AND NOT c.has_opted_out
"""
FLOOR_FIVE = """
SELECT COUNT(*) FROM contact_parameters plan
JOIN contacts c ON c.user_id = plan.user_id AND c.id = plan.contact_id
JOIN contact_parameters age ON age.user_id = plan.user_id AND age.contact_id = plan.contact_id
  AND age.key = 'age'
JOIN contact_parameters lang ON lang.user_id = plan.user_id
  AND lang.contact_id = plan.contact_id AND lang.key = 'language'
LEFT JOIN contact_parameters city ON city.user_id = plan.user_id
  AND city.contact_id = plan.contact_id AND city.key = 'city'
WHERE plan.user_id = :user AND plan.key = 'plan' AND plan.value_folded = 'pro'
  AND NOT c.has_opted_out AND age.value_number > 25 AND age.value_number < 60
  AND lang.value_folded LIKE 'it%' AND (city.value_folded IS NULL OR city.value_folded <> 'roma')
"""


def _naive_sql(dialect: str, *, five: bool) -> str:
    def value(key: str) -> str:
        if dialect == "sqlite":
            return f"json_extract(custom_parameters, '$.{key}')"
        return f"(custom_parameters ->> '{key}')"

    where = [f"lower({value('plan')}) = 'pro'"]
    if five:
        age = f"CAST({value('age')} AS DOUBLE PRECISION)"
        where += [
            f"{age} > 25",
            f"{age} < 60",
            f"({value('city')} IS NULL OR lower({value('city')}) <> 'roma')",
            f"lower({value('language')}) LIKE 'it%'",
        ]
    # Only the fixed keys above are pasted: this is the benchmark's own SQL, not user text.
    return (
        "SELECT COUNT(*) FROM contacts WHERE user_id = :user AND NOT has_opted_out AND "  # noqa: S608
        + " AND ".join(where)
    )


# -- setup ----------------------------------------------------------------------------


def fresh_database(
    url: str | None, sqlite_path: Path | None = None
) -> tuple[str, Callable[[], None]]:
    """A new, empty database URL (a new database on the PostgreSQL server `url` names,
    else the SQLite file `sqlite_path`, by default var/bench/), and how to get rid of it.
    On a Citus coordinator, the database is made on every node and distributed
    (`segmenti db distribute`'s logic)."""
    if url and url.startswith("postgresql") and is_citus(url):
        return _citus_database(url)
    if url and url.startswith("postgresql"):
        server = make_url(url)
        name = f"segmenti_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))

        def drop() -> None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        return server.set(database=name).render_as_string(hide_password=False), drop
    path = sqlite_path or ROOT / "var" / "bench" / "segmenti-bench.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            (path.parent / (path.name + suffix)).unlink()
    return f"sqlite:///{path}", lambda: None


def is_citus(url: str) -> bool:
    """Whether `url` names a database of a Citus coordinator with workers added."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            distribution.check_citus(connection)
            return True
    except distribution.CannotDistribute:
        return False
    finally:
        engine.dispose()


def _citus_database(url: str) -> tuple[str, Callable[[], None]]:
    server = make_url(url)
    name = f"segmenti_bench_{uuid.uuid4().hex[:8]}"
    made = distribution.create_database(server, name)
    engine = create_engine(made)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        distribution.distribute(connection)
    engine.dispose()
    return made.render_as_string(hide_password=False), lambda: distribution.drop_database(
        server, name
    )


def _machine(engine: Engine) -> dict[str, Any]:
    cpu = "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = 0.0
    with suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            database = "SQLite " + connection.exec_driver_sql("SELECT sqlite_version()").scalar()
        else:
            database = str(connection.exec_driver_sql("SHOW server_version").scalar())
            database = "PostgreSQL " + database
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "load_average_1m": round(os.getloadavg()[0], 2),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": memory_gb,
        "database": database,
        "python_sqlite": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def _create_segments(db: Database, *, user_id: int, plans: list[data.SegmentPlan]) -> float:
    start = time.perf_counter()
    for plan in plans:
        if plan.phone_numbers is not None:
            bulk = BulkNumbers(tuple(normalize_phone(n) for n in plan.phone_numbers))
            item = SegmentInput(name=plan.name, bulk=bulk)
        elif plan.contacts_ids is not None:
            item = SegmentInput(name=plan.name, contacts_ids=tuple(plan.contacts_ids))
        else:
            item = SegmentInput(name=plan.name, filter=plan.filter)
        with db.write() as session:
            service.create_segment(session, user_id=user_id, data=item)
    return time.perf_counter() - start


class Server:
    """`segmenti serve` in its own process, on a free loopback port."""

    def __init__(self, database_url: str) -> None:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        executable = shutil.which("segmenti", path=str(Path(sys.executable).parent))
        assert executable, "segmenti is not installed in this environment (make install)"
        env = {**os.environ, "SEGMENTI_DATABASE_URL": database_url}
        env["SEGMENTI_LOG_LEVEL"] = "warning"
        # bench_events: webhooks to a receiver on loopback, delivered by its own deliverer.
        env["SEGMENTI_WEBHOOKS_ALLOW_PRIVATE"] = "1"
        env["SEGMENTI_DELIVERER_IN_SERVE"] = "0"
        self.process = subprocess.Popen(
            [executable, "serve", "--host", HOST, "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection((HOST, self.port), timeout=1):
                return
            if self.process.poll() is not None:
                raise RuntimeError("segmenti serve exited at start")
            time.sleep(0.2)
        raise RuntimeError("segmenti serve did not start within 60 s")

    def memory_mb(self) -> dict[str, float]:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        values = {}
        for line in status.splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = round(int(rest.split()[0]) / 1024, 1)
        return {"rss_mb": values["VmRSS"], "peak_rss_mb": values["VmHWM"]}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- measuring ------------------------------------------------------------------------


def _sample(fn: Callable[[], Any], times: int) -> tuple[list[float], Any]:
    """Milliseconds of `times` calls, and the last result."""
    samples = []
    result = None
    for _ in range(times):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, result


def _scalar(engine: Engine, sql: str, **params: Any) -> Callable[[], Any]:
    def run() -> Any:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    return run


def _filter_body(name: str, spec: filters.Filter) -> dict[str, Any]:
    return {
        "name": name,
        "type": "filter",
        "filters_custom_parameter_key": [c.key for c in spec.conditions],
        "filters_custom_parameter_condition": [c.condition for c in spec.conditions],
        "filters_custom_parameter_value": [c.value for c in spec.conditions],
    }


def measure_create(
    client: http_client.Client, engine: Engine, *, user_id: int, reps: int, naive_reps: int
) -> dict[str, Any]:
    results = {}
    for label, spec, floor_sql, five in (
        ("create_filter_1", ONE_CONDITION, FLOOR_ONE, False),
        ("create_filter_5", FIVE_CONDITIONS, FLOOR_FIVE, True),
    ):
        created, samples = [], []
        for number in range(reps):
            elapsed, response = client.timed(
                "POST", "/api/segments", _filter_body(f"bench {label} {number}", spec)
            )
            assert response.status == 201, response.body[:300]
            samples.append(elapsed)
            created.append(response.json()["data"]["id"])
        total = client.request("GET", f"/api/segments/{created[0]}").json()["data"]
        for segment_id in created:
            client.request("DELETE", f"/api/segments/{segment_id}")
        floor_ms, floor_count = _sample(_scalar(engine, floor_sql, user=user_id), min(reps, 10))
        naive_sql = _naive_sql(engine.dialect.name, five=five)
        naive_ms, naive_count = _sample(_scalar(engine, naive_sql, user=user_id), naive_reps)
        results[label] = {
            **http_client.percentiles(samples),
            "total_contacts": total["total_contacts"],
            "floor": {**http_client.percentiles(floor_ms), "count": floor_count, "sql": floor_sql},
            "naive": {**http_client.percentiles(naive_ms), "count": naive_count, "sql": naive_sql},
        }
        # The three must agree, or the comparison means nothing.
        assert total["total_contacts"] == floor_count == naive_count, results[label]
    return results


def measure_preview(
    client: http_client.Client, engine: Engine, *, user_id: int, reps: int, created: dict[str, Any]
) -> dict[str, Any]:
    """POST /api/segments/preview of item 1's filters: the count without the write."""
    results = {}
    for label, spec in (("preview_filter_1", ONE_CONDITION), ("preview_filter_5", FIVE_CONDITIONS)):
        samples = []
        for number in range(reps):
            elapsed, response = client.timed(
                "POST", "/api/segments/preview", _filter_body(f"preview {number}", spec)
            )
            assert response.status == 200, response.body[:300]
            samples.append(elapsed)
        baselines = created[label.replace("preview", "create")]
        assert response.json()["data"]["total_contacts"] == baselines["total_contacts"]
        results[label] = {
            **http_client.percentiles(samples),
            "total_contacts": baselines["total_contacts"],
            "floor": baselines["floor"],
            "naive": baselines["naive"],
        }
    return results


def measure_members(
    client: http_client.Client, db: Database, *, user_id: int, reps: int, naive_reps: int
) -> dict[str, Any]:
    """GET /api/segments/{id}/contacts, the first page of 25, of the largest filter
    segment, and of a page deep into it (keyset: after_id)."""
    from segmenti.db.tables import contacts
    from segmenti.segments.members import members_where

    with db.read() as session:
        row = session.execute(
            select(segments.c.id, segments.c.settings, segments.c.total_contacts)
            .where(segments.c.user_id == user_id, segments.c.type == "filter")
            .order_by(segments.c.total_contacts.desc())
            .limit(1)
        ).one()
    path = f"/api/segments/{row.id}/contacts?results_per_page=25"
    samples = []
    for _ in range(reps):
        elapsed, response = client.timed("GET", path)
        assert response.status == 200, response.body[:300]
        samples.append(elapsed)
    where = members_where(user_id=user_id, segment_id=row.id, type="filter", settings=row.settings)
    page = select(contacts).where(where).order_by(contacts.c.id).limit(25)

    def floor() -> None:
        with db.engine.connect() as connection:
            connection.execute(page).all()

    def naive() -> None:
        # The page, plus the segment counted on every read for the envelope's total.
        with db.read() as session:
            session.execute(page).all()
            spec = filters.Filter.from_settings(row.settings)
            counts.count_filter(session, user_id=user_id, spec=spec)

    floor_ms, _ = _sample(floor, min(reps, 20))
    naive_ms, _ = _sample(naive, naive_reps)
    return {
        "members_page": {
            **http_client.percentiles(samples),
            "segment_id": row.id,
            "total_contacts": row.total_contacts,
            "floor": {
                **http_client.percentiles(floor_ms),
                "how": "the page's SELECT straight on the DB",
            },
            "naive": {**http_client.percentiles(naive_ms), "how": "the page plus count_filter"},
        }
    }


def measure_list(
    client: http_client.Client,
    db: Database,
    *,
    user_id: int,
    api_key: str,
    reps: int,
    naive_reps: int,
    seconds: int,
) -> dict[str, Any]:
    path = "/api/segments?results_per_page=25"
    samples = []
    for _ in range(reps):
        elapsed, response = client.timed("GET", path)
        assert response.status == 200
        samples.append(elapsed)
    concurrent = http_client.throughput(
        HOST, client.port, api_key, path, connections=8, seconds=seconds
    )

    def naive() -> list[int]:
        # Without maintained counts, every listed segment is counted on every read.
        with db.read() as session:
            rows, _total = service.list_segments(session, user_id=user_id, page=Page(1, 25))
            return [
                counts.count_filter(
                    session, user_id=user_id, spec=filters.Filter.from_settings(row["settings"])
                )
                if row["type"] == "filter"
                else counts.count_members(session, user_id=user_id, segment_id=row["id"])
                for row in rows
            ]

    naive_ms, naive_counts = _sample(naive, naive_reps)
    listed = [row["total_contacts"] for row in client.request("GET", path).json()["data"]]
    assert listed == naive_counts, (listed, naive_counts)
    floor_sql = (
        "SELECT id, name, type, settings, total_contacts FROM segments WHERE user_id = :user "
        "ORDER BY datetime DESC, id DESC LIMIT 25"
    )

    def floor() -> None:
        with db.engine.connect() as connection:
            connection.execute(text(floor_sql), {"user": user_id}).all()
            connection.execute(
                text("SELECT COUNT(*) FROM segments WHERE user_id = :user"), {"user": user_id}
            ).scalar()

    floor_ms, _ = _sample(floor, reps)
    return {
        "list_segments": {
            **http_client.percentiles(samples),
            "concurrent": concurrent,
            "floor": {**http_client.percentiles(floor_ms), "sql": floor_sql + "; plus COUNT(*)"},
            "naive": {
                **http_client.percentiles(naive_ms),
                "how": "the same page, each listed segment counted from scratch (count_filter)",
            },
        }
    }


def measure_get(
    client: http_client.Client, db: Database, *, user_id: int, reps: int, naive_reps: int
) -> dict[str, Any]:
    with db.read() as session:
        row = session.execute(
            select(segments.c.id, segments.c.settings, segments.c.total_contacts)
            .where(segments.c.user_id == user_id, segments.c.type == "filter")
            .order_by(segments.c.total_contacts.desc())
            .limit(1)
        ).one()
    spec = filters.Filter.from_settings(row.settings)
    samples = []
    for _ in range(reps):
        elapsed, response = client.timed("GET", f"/api/segments/{row.id}")
        assert response.status == 200
        samples.append(elapsed)

    def naive() -> int:
        with db.read() as session:
            service.get_segment(session, user_id=user_id, segment_id=row.id)
            return counts.count_filter(session, user_id=user_id, spec=spec)

    naive_ms, naive_count = _sample(naive, naive_reps)
    assert naive_count == row.total_contacts
    floor_sql = "SELECT * FROM segments WHERE user_id = :user AND id = :id"
    floor_ms, _ = _sample(_scalar(db.engine, floor_sql, user=user_id, id=row.id), reps)
    return {
        "get_segment": {
            **http_client.percentiles(samples),
            "segment_id": row.id,
            "settings": row.settings,
            "total_contacts": row.total_contacts,
            "floor": {**http_client.percentiles(floor_ms), "sql": floor_sql},
            "naive": {**http_client.percentiles(naive_ms), "how": "count_filter on every read"},
        }
    }


def _contact_body(rng: random.Random, e164: str | None = None) -> dict[str, Any]:
    phone = normalize_phone(e164) if e164 else None
    parameters = data.parameters_for(rng, phone or normalize_phone("+393331234567"))
    body: dict[str, Any] = {"custom_parameters": parameters}
    if e164:
        body["phone_number"] = e164
    return body


def measure_contact_writes(
    client: http_client.Client,
    engine: Engine,
    *,
    user_id: int,
    reps: int,
    rng: random.Random,
    taken: set[str],
    contact_count: int,
) -> dict[str, Any]:
    from segmenti.contacts.service import parameter_rows
    from segmenti.db.tables import contact_parameters, contacts

    new_numbers = [info.e164 for info in data.phone_numbers(rng, 2 * reps, taken=taken)]
    created_ms, updated_ms = [], []
    for e164 in new_numbers[:reps]:
        elapsed, response = client.timed("POST", "/api/contacts", _contact_body(rng, e164))
        assert response.status == 201, response.body[:300]
        created_ms.append(elapsed)
    for _ in range(reps):
        contact_id = rng.randint(1, contact_count)
        elapsed, response = client.timed("POST", f"/api/contacts/{contact_id}", _contact_body(rng))
        assert response.status == 200, response.body[:300]
        updated_ms.append(elapsed)

    # Floor: the same rows written by hand in one transaction, without any count
    # upkeep; then removed again (untimed), so the maintained counts stay exact.
    floor_ms = []
    for e164 in new_numbers[reps:]:
        body = _contact_body(rng, e164)
        info = normalize_phone(e164)
        start = time.perf_counter()
        with engine.begin() as connection:
            contact_id = connection.execute(
                insert(contacts)
                .values(
                    user_id=user_id,
                    name="",
                    phone_number=e164,
                    custom_parameters=body["custom_parameters"],
                    country_code=info.country_code,
                    continent_code=info.continent_code,
                    has_opted_out=False,
                    datetime=datetime.now(UTC).replace(tzinfo=None),
                )
                .returning(contacts.c.id)
            ).scalar_one()
            connection.execute(
                insert(contact_parameters),
                parameter_rows(
                    user_id=user_id, contact_id=contact_id, raw=body["custom_parameters"]
                ),
            )
        floor_ms.append((time.perf_counter() - start) * 1000)
        with engine.begin() as connection:
            connection.execute(contacts.delete().where(contacts.c.id == contact_id))
    floor = {
        **http_client.percentiles(floor_ms),
        "how": "INSERT the contact and its parameters in one transaction, by hand",
    }
    naive = {"how": "the same as the floor: without maintained counts a write does nothing more"}
    return {
        "contact_create": {**http_client.percentiles(created_ms), "floor": floor, "naive": naive},
        "contact_update": {**http_client.percentiles(updated_ms), "floor": floor, "naive": naive},
    }


def measure_bulk(
    client: http_client.Client,
    engine: Engine,
    *,
    rng: random.Random,
    size: int,
    contact_list: list[data.Contact],
    taken: set[str],
) -> dict[str, Any]:
    """A bulk segment of `size` numbers, half of them contacts already."""
    existing = [c.phone.e164 for c in rng.sample(contact_list, min(size // 2, len(contact_list)))]
    new = [info.e164 for info in data.phone_numbers(rng, size - len(existing), taken=taken)]
    numbers = existing + new
    rng.shuffle(numbers)
    body = {"name": "bench bulk", "type": "bulk", "phone_numbers": "\n".join(numbers)}
    elapsed, response = client.timed("POST", "/api/segments", body)
    assert response.status == 201, response.body[:300]

    def floor() -> None:
        # Writing the membership rows alone, by hand, into a scratch table.
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TEMPORARY TABLE bench_members (segment_id INTEGER, contact_id INTEGER, "
                "user_id INTEGER, PRIMARY KEY (segment_id, contact_id))"
            )
            connection.execute(
                text("INSERT INTO bench_members VALUES (1, :contact, 1)"),
                [{"contact": n} for n in range(1, size + 1)],
            )
            connection.exec_driver_sql("DROP TABLE bench_members")

    floor_ms, _ = _sample(floor, 1)
    return {
        "bulk_segment": {
            "ms": round(elapsed, 1),
            "numbers": size,
            "new_contacts": len(new),
            "floor": {"ms": round(floor_ms[0], 1), "how": f"INSERT {size} membership rows"},
            "naive": {"how": "no different: a bulk segment is counted once, when written"},
        }
    }


def measure_recount(
    db: Database, *, user_id: int, database_url: str, sample_size: int
) -> dict[str, Any]:
    executable = shutil.which("segmenti", path=str(Path(sys.executable).parent))
    assert executable
    env = {**os.environ, "SEGMENTI_DATABASE_URL": database_url}
    start = time.perf_counter()
    output = subprocess.run(
        [executable, "segments", "recount", "--user", str(user_id), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed = time.perf_counter() - start
    report = json.loads(output)

    with db.read() as session:
        rows = session.execute(
            select(segments.c.id, segments.c.type, segments.c.settings).where(
                segments.c.user_id == user_id
            )
        ).all()
    filter_rows = [row for row in rows if row.type == "filter"]
    sample = random.Random(0).sample(filter_rows, min(sample_size, len(filter_rows)))
    scale = len(filter_rows) / max(1, len(sample))

    def sql_counts(shape: Callable[[filters.Filter], Any]) -> float:
        """Seconds to count every filter segment one SQL COUNT each, from a sample."""
        start = time.perf_counter()
        with db.engine.connect() as connection:
            for row in sample:
                spec = filters.Filter.from_settings(row.settings)
                connection.execute(shape(spec)).scalar_one()
        return (time.perf_counter() - start) * scale

    from sqlalchemy import func

    from segmenti.db.tables import contacts

    floor_s = sql_counts(lambda spec: filters.count_sql(spec, user_id=user_id))
    naive_s = sql_counts(
        lambda spec: (
            select(func.count())
            .select_from(contacts)
            .where(filters.to_sql(spec, user_id=user_id), contacts.c.has_opted_out.is_(False))
        )
    )
    return {
        "recount_all": {
            "ms": round(elapsed * 1000, 1),
            "segments": report["segments"],
            "corrected": report["corrected"],
            "how": "segmenti segments recount --user ID (a process, end to end)",
            "floor": {
                "ms": round(floor_s * 1000, 1),
                "how": f"one index-driven SQL COUNT per filter segment ({len(sample)} timed, "
                "scaled to all; list segments left out)",
            },
            "naive": {
                "ms": round(naive_s * 1000, 1),
                "how": f"one IN-list SQL COUNT per filter segment, main's shape before this "
                f"suite ({len(sample)} timed, scaled)",
            },
        }
    }


# -- report ---------------------------------------------------------------------------

TARGETS = {
    "list_segments": ("p50 < 10 ms, >= 20x naive", lambda r: r["p50_ms"] < 10),
    "create_filter_1": (
        "p50 < 100 ms, <= 1.5x floor",
        lambda r: r["p50_ms"] < 100 and r["p50_ms"] <= 1.5 * r["floor"]["p50_ms"],
    ),
    "contact_create": ("p50 < 5 ms", lambda r: r["p50_ms"] < 5),
    "contact_update": ("p50 < 5 ms", lambda r: r["p50_ms"] < 5),
    "bulk_segment": ("< 2 s", lambda r: r["ms"] < 2000),
    "recount_all": ("< 60 s, 0 corrected", lambda r: r["ms"] < 60_000 and not r["corrected"]),
    "server_memory": ("RSS < 1 GB", lambda r: r["peak_rss_mb"] < 1024),
    "csv_import": (
        ">= 50,000 rows/s and >= 0.8x SQLite's on the same file",
        lambda r: r["rows_per_s"] >= 50_000 and r["vs_sqlite"] >= 0.8,
    ),
}
TARGETS |= bench_search.targets()
TARGETS |= bench_trees.TARGETS


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.1f} ms"


def _main_figure(result: dict[str, Any]) -> float | None:
    for key in ("p50_ms", "ms"):
        if key in result:
            return float(result[key])
    return None


def table(results: dict[str, Any]) -> str:
    lines = [
        "| measurement | segmenti p50 (or once) | p95 | floor | naive | vs floor "
        "| naive / segmenti | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        if name == "server_memory":
            verdict = "met" if TARGETS[name][1](result) else "MISSED"
            lines.append(
                f"| server RSS (peak) | {result['peak_rss_mb']:.0f} MB | - | - | - | - | - | "
                f"{TARGETS[name][0]}: {verdict} |"
            )
            continue
        if name == "csv_import":
            lines.append(csv_import.table_row(result, TARGETS[name]))
            continue
        figure = _main_figure(result)
        floor = _main_figure(result.get("floor", {}))
        naive = _main_figure(result.get("naive", {}))
        vs_floor = f"{figure / floor:.2f}x" if figure and floor else "-"
        speedup = f"{naive / figure:.0f}x" if figure and naive else "-"
        target = ""
        if name in TARGETS:
            description, check = TARGETS[name]
            met = check(result)
            if name == "list_segments" and naive and figure:
                met = met and naive / figure >= 20
            target = f"{description}: {'met' if met else 'MISSED'}"
        lines.append(
            f"| {name} | {_ms(figure)} | {_ms(result.get('p95_ms'))} | {_ms(floor)} | "
            f"{_ms(naive)} | {vs_floor} | {speedup} | {target} |"
        )
        concurrent = result.get("concurrent")
        if concurrent:
            lines.append(
                f"| {name}, {concurrent['connections']} clients ({concurrent['tool']}) | "
                f"{concurrent['requests_per_s']:.0f} req/s | - | - | - | - | - | "
                f"{concurrent['non_2xx']} errors |"
            )
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=1_000)
    parser.add_argument("--bulk", type=int, default=100_000, help="numbers in item 5")
    parser.add_argument("--quick", action="store_true", help="100k contacts, 100 segments")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=30, help="requests per latency figure")
    parser.add_argument("--seconds", type=int, default=10, help="length of the wrk run")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.segments, args.seconds = 100_000, 100, 5

    load_before = round(os.getloadavg()[0], 2)  # other jobs on the machine skew figures
    server_url = os.environ.get("SEGMENTI_DATABASE_URL")
    database_url, drop = fresh_database(server_url)
    # Setting up and measuring from here is the operator's work, like a command's: no
    # statement timeout (filter counts at 1M on a busy machine can pass the server's).
    db = Database(Settings(database_url=database_url), statement_timeout_seconds=0)
    migrate.upgrade(db.engine)
    backend = "citus" if server_url and is_citus(database_url) else db.engine.dialect.name
    print(f"{backend}: {args.contacts:,} contacts, {args.segments:,} segments", flush=True)
    rng = random.Random(args.seed)
    setup: dict[str, float] = {}
    with db.write() as session:
        user_id, api_key = auth.create_user(session, name="bench")

    # Filter segments are defined through the service layer before the contacts are
    # bulk-loaded (counting an empty table), list segments after it; then the product's
    # own recount (item 6's code) brings every filter to its real count. Defining 700
    # filters one COUNT each over 1M contacts would take about ten minutes of setup.
    # The newest 50 (the first pages of the list) are defined last, in their drawn
    # order and counted by the service, so a page mixes the three types.
    start = time.perf_counter()
    taken: set[str] = set()
    contact_list = list(data.make_contacts(rng, args.contacts, taken=taken))
    plans = data.segment_plans(rng, args.segments, contact_list=contact_list)
    plans = bench_trees.with_trees(random.Random(args.seed + 14), plans)
    setup["generate_s"] = time.perf_counter() - start
    newest = plans[-50:]
    older = plans[: len(plans) - len(newest)]
    filter_plans = [plan for plan in older if plan.filter is not None]
    setup["define_filters_s"] = _create_segments(db, user_id=user_id, plans=filter_plans)
    start = time.perf_counter()
    data.load_contacts(db.engine, user_id=user_id, contact_list=contact_list)
    setup["load_s"] = time.perf_counter() - start
    print(f"  generated and loaded in {setup['generate_s'] + setup['load_s']:.0f} s", flush=True)
    list_plans = [plan for plan in older if plan.filter is None]
    setup["define_lists_s"] = _create_segments(db, user_id=user_id, plans=list_plans)
    setup["define_newest_s"] = _create_segments(db, user_id=user_id, plans=newest)
    start = time.perf_counter()
    with db.write() as session:
        counts.lock_tenant(session, user_id=user_id, exclusive=True)
        for _ in recount.recount_user(session, user_id=user_id):
            pass
    setup["first_count_s"] = time.perf_counter() - start
    defining = sum(setup.values()) - setup["generate_s"] - setup["load_s"]
    print(f"  {len(plans)} segments defined and counted in {defining:.0f} s", flush=True)

    server = Server(database_url)
    results: dict[str, Any] = {}
    try:
        client = http_client.Client(HOST, server.port, api_key)
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            (
                "list",
                lambda: measure_list(
                    client,
                    db,
                    user_id=user_id,
                    api_key=api_key,
                    reps=max(100, args.reps),
                    naive_reps=2,
                    seconds=args.seconds,
                ),
            ),
            (
                "get",
                lambda: measure_get(
                    client, db, user_id=user_id, reps=max(100, args.reps), naive_reps=5
                ),
            ),
            (
                "create",
                lambda: measure_create(
                    client, db.engine, user_id=user_id, reps=args.reps, naive_reps=2
                ),
            ),
            (
                "contact writes",
                lambda: measure_contact_writes(
                    client,
                    db.engine,
                    user_id=user_id,
                    reps=max(100, args.reps),
                    rng=rng,
                    taken=taken,
                    contact_count=args.contacts,
                ),
            ),
            (
                "bulk",
                lambda: measure_bulk(
                    client,
                    db.engine,
                    rng=rng,
                    size=args.bulk,
                    contact_list=contact_list,
                    taken=taken,
                ),
            ),
            (
                "recount",
                lambda: measure_recount(
                    db, user_id=user_id, database_url=database_url, sample_size=10
                ),
            ),
            # Last: it adds a second tenant, and drops and rebuilds the search index.
            (
                "search",
                lambda: bench_search.measure(
                    client,
                    db,
                    api_key=api_key,
                    database_url=database_url,
                    big_user_id=user_id,
                    big_contacts=args.contacts,
                    small_contacts=10_000,
                    import_contacts=args.contacts // 10,
                    reps=args.reps,
                    rng=rng,
                    taken=taken,
                ),
            ),
        ]
        paths = client.request("GET", "/api/openapi.json").json()["paths"]
        if "/api/segments/preview" in paths:
            steps.insert(
                3,
                (
                    "preview",
                    lambda: measure_preview(
                        client, db.engine, user_id=user_id, reps=args.reps, created=results
                    ),
                ),
            )
        if "/api/segments/{segment_id}/contacts" in paths:
            steps.insert(
                2,
                (
                    "members",
                    lambda: measure_members(
                        client, db, user_id=user_id, reps=max(100, args.reps), naive_reps=2
                    ),
                ),
            )
        steps.insert(
            len(steps) - 1,
            (
                "trees",
                lambda: bench_trees.measure(
                    client, db, user_id=user_id, reps=args.reps, seed=args.seed
                ),
            ),
        )
        if "/api/webhooks" in paths:
            steps.insert(
                len(steps) - 1,  # before the search step, which stays last
                (
                    "events",
                    lambda: bench_events.measure(
                        client,
                        db,
                        user_id=user_id,
                        rng=rng,
                        taken=taken,
                        contact_count=args.contacts,
                        reps=max(100, args.reps),
                        memory=server.memory_mb,
                    ),
                ),
            )
        steps.insert(
            len(steps) - 1,
            (
                "csv import",
                lambda: csv_import.measure_import(
                    contact_list=contact_list,
                    backend_url=database_url,
                    fresh_database=fresh_database,
                    workdir=ROOT / "var" / "bench" / "import",
                ),
            ),
        )
        for label, step in steps:
            start = time.perf_counter()
            results.update(step())
            print(f"  {label}: {time.perf_counter() - start:.0f} s", flush=True)
        results["server_memory"] = server.memory_mb()
        client.close()
    finally:
        server.stop()
        machine = _machine(db.engine)
        db.dispose()
        if not args.keep:
            drop()

    report = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "backend": backend,
        "contacts": args.contacts,
        "segments": args.segments,
        "seed": args.seed,
        "machine": {**machine, "load_average_1m_at_start": load_before},
        "setup": {key: round(value, 1) for key, value in setup.items()},
        "results": results,
    }
    rendered = table(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{backend}-{args.contacts}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    header = (
        f"{backend}, {args.contacts:,} contacts, {args.segments:,} segments; "
        f"{machine['database']}; {machine['nproc']} cores {machine['cpu']}, "
        f"{machine['memory_gb']} GB RAM; load average {load_before} at start, "
        f"{machine['load_average_1m']} at end; commit {machine['commit']}, {report['when']} UTC"
    )
    (RESULTS / f"{stem}.md").write_text(f"{header}\n\n{rendered}\n")
    print(f"\n{header}\n\n{rendered}\n\nwritten to bench/results/{stem}.json and .md")


if __name__ == "__main__":
    main()
