"""End-to-end speed and memory of `segmenti contacts import` on generated contacts.

    .venv/bin/python bench/bench_import.py [--contacts 1000000] [--segments 0] [--seed 1]

Writes a CSV of generated contacts (`bench/demo_data.py`, frozen; five custom parameters,
some missing) into a temporary directory, makes a fresh SQLite database and user, and
times the real command in its own process: start-up, migrations, reading, normalizing,
writing and committing every batch. Reports rows/s and the import process's peak RSS (from
wait4's rusage), which stays flat as the file grows because the file is streamed.
With --segments N, the user first gets N demo filter segments, so every batch also
keeps their counts exact. --sparse-keys K writes K parameter columns instead, three
filled a row (a wide, sparse spreadsheet). --sizes 100000,1000000 runs several sizes to
show memory does not grow with the file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import demo_data as demo
from segmenti.contacts import csv_io, importer
from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.forms import Params
from segmenti.segments.forms import segment_input
from segmenti.segments.service import create_segment
from segmenti.settings import Settings

SEGMENTI = str(Path(sys.executable).parent / "segmenti")


def write_csv(path: Path, count: int, seed: int, sparse_keys: int = 0) -> None:
    """Demo contacts with their five parameters; with `sparse_keys`, instead, that many
    parameter columns of which each row fills three (a wide, sparse spreadsheet)."""
    keys = [f"k{n}" for n in range(sparse_keys)] if sparse_keys else list(demo.PARAMETER_KEYS)
    chooser = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(csv_io.export_header(keys))
        for contact in demo.contacts(count, seed=seed):
            if sparse_keys:
                cells = [""] * sparse_keys
                for n in chooser.sample(range(sparse_keys), min(3, sparse_keys)):
                    cells[n] = f"v{chooser.randrange(50)}"
            else:
                cells = [contact.custom_parameters.get(key, "") for key in keys]
            writer.writerow([contact.phone.e164, contact.name, int(contact.has_opted_out), *cells])


def run(
    count: int, *, seed: int, segments: int, batch_size: int, sparse_keys: int, workdir: Path
) -> dict:
    source = workdir / f"contacts-{count}.csv"
    started = time.perf_counter()
    write_csv(source, count, seed, sparse_keys)
    generated = time.perf_counter() - started
    url = f"sqlite:///{workdir / f'bench-{count}.db'}"
    env = {**os.environ, "SEGMENTI_DATABASE_URL": url}
    made = subprocess.run(
        [SEGMENTI, "users", "create", "bench", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    user_id = json.loads(made.stdout)["user_id"]
    if segments:
        db = Database(Settings(database_url=url))
        migrate.upgrade(db.engine)
        with db.write() as session:
            for segment in demo.segments(segments, seed=seed):
                data = segment_input(Params.from_json(segment.params), db.settings)
                create_segment(session, user_id=user_id, data=data)
        db.dispose()
    command = [SEGMENTI, "contacts", "import", str(source), "--user", str(user_id),
               "--batch-size", str(batch_size), "--json"]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    stdout = process.stdout.read() if process.stdout else b""
    if status != 0:
        stderr = process.stderr.read() if process.stderr else b""
        raise SystemExit(f"import failed: {stderr.decode()[-2000:]}")
    report = json.loads(stdout)
    return {
        "contacts": count,
        "segments": segments,
        "sparse_keys": sparse_keys,
        "file_mib": round(source.stat().st_size / 2**20, 1),
        "generate_s": round(generated, 1),
        "import_s": round(elapsed, 2),
        "rows_per_s": round(count / elapsed),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "created": report["created"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--sizes", help="comma-separated contact counts (overrides --contacts)")
    parser.add_argument(
        "--sparse-keys", type=int, default=0, help="that many parameter columns, 3 filled a row"
    )
    parser.add_argument("--segments", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=importer.BATCH_SIZE)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.contacts]
    with tempfile.TemporaryDirectory(prefix="segmenti-bench-") as tmp:
        for count in sizes:
            result = run(
                count,
                seed=args.seed,
                segments=args.segments,
                batch_size=args.batch_size,
                sparse_keys=args.sparse_keys,
                workdir=Path(tmp),
            )
            print(json.dumps(result))


if __name__ == "__main__":
    main()
