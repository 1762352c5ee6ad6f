"""The CSV import on Citus beside SQLite and plain PostgreSQL, on the same file in the
same run (issue 12: Citus at least a third as fast as SQLite).

    .venv/bin/python -m bench.bench_citus --contacts 200000 \\
        --citus postgresql+psycopg://segmenti@127.0.0.1:55500/segmenti \\
        [--postgresql postgresql+psycopg://segmenti@127.0.0.1:55432/segmenti]

Writes one CSV of demo contacts (bench_import.write_csv), then for each backend makes a
fresh database (on Citus: on the coordinator and every worker, with the workers added
and `segmenti db distribute` run), creates a user and times the real
`segmenti contacts import` in its own process. Prints one JSON line per backend and
writes bench/results/citus-import-N.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench import bench_import
from bench.run import RESULTS, fresh_database
from segmenti.contacts import importer

SEGMENTI = str(Path(sys.executable).parent / "segmenti")


def time_import(url: str, source: Path, *, batch_size: int) -> dict[str, Any]:
    env = {**os.environ, "SEGMENTI_DATABASE_URL": url}
    made = subprocess.run(
        [SEGMENTI, "users", "create", "bench", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    user_id = str(json.loads(made.stdout)["user_id"])
    command = [SEGMENTI, "contacts", "import", str(source), "--user", user_id,
               "--batch-size", str(batch_size), "--json"]  # fmt: skip
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"import failed: {done.stderr[-2000:]}")
    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM contacts WHERE user_id = :user"), {"user": int(user_id)}
        ).scalar()
    engine.dispose()
    return {
        "import_s": round(elapsed, 2),
        "created": json.loads(done.stdout)["created"],
        "stored": stored,
        "load_average_1m_at_start": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--citus", required=True, help="URL of a coordinator's database")
    parser.add_argument("--postgresql", help="URL of a plain PostgreSQL server, to compare")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=importer.BATCH_SIZE)
    args = parser.parse_args()
    backends: list[tuple[str, Callable[[], tuple[str, Callable[[], None]]]]] = []
    with tempfile.TemporaryDirectory(prefix="segmenti-bench-") as tmp:
        workdir = Path(tmp)
        backends.append(("sqlite", lambda: fresh_database(None, workdir / "bench.db")))
        if args.postgresql:
            backends.append(("postgresql", lambda: fresh_database(args.postgresql)))
        backends.append(("citus", lambda: fresh_database(args.citus)))
        source = workdir / "contacts.csv"
        bench_import.write_csv(source, args.contacts, args.seed)
        results = {}
        for backend, make in backends:
            url, drop = make()
            try:
                result = time_import(url, source, batch_size=args.batch_size)
            finally:
                drop()
            result["rows_per_s"] = round(args.contacts / result["import_s"])
            results[backend] = result
            print(json.dumps({"backend": backend, **result}), flush=True)
    sqlite_rate = results["sqlite"]["rows_per_s"]
    for result in results.values():
        result["share_of_sqlite"] = round(result["rows_per_s"] / sqlite_rate, 2)
    report = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "contacts": args.contacts,
        "nproc": os.cpu_count(),
        "citus_nodes": "a coordinator and two workers, PostgreSQL 15, on loopback, same 2 cores",
        "command": " ".join(["python -m bench.bench_citus", *sys.argv[1:]]),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"citus-import-{args.contacts}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = [
        f"| {name} | {r['import_s']} s | {r['rows_per_s']:,} | {r['share_of_sqlite']} |"
        f" {r['load_average_1m_at_start']} |"
        for name, r in results.items()
    ]
    table = "\n".join(
        [
            f"CSV import of {args.contacts:,} demo contacts, same file, same run, "
            f"{report['when']} UTC; {report['citus_nodes']}.",
            "",
            "| backend | import | rows/s | share of SQLite | load (1 min) at start |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    (RESULTS / f"{stem}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
