"""`segmenti contacts import|export` and `segmenti demo`, in-process, plus one real
process killed in the middle of an import."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from segmenti import demo
from segmenti.cli import app
from segmenti.cli import contacts as contacts_cli
from segmenti.contacts import csv_io
from segmenti.db.engine import Database
from segmenti.db.tables import contact_parameters, contacts
from segmenti.forms import Params
from segmenti.segments.forms import segment_input
from segmenti.segments.service import create_segment
from segmenti.settings import Settings
from tests.counting import stale_counts

runner = CliRunner()


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"SEGMENTI_DATABASE_URL": database_url}


@pytest.fixture
def user_id(env: dict[str, str]) -> int:
    made = runner.invoke(app, ["users", "create", "Acme", "--json"], env=env)
    return int(json.loads(made.stdout)["user_id"])


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(Settings(database_url=database_url))
    yield database
    database.dispose()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_import_prints_a_summary_and_writes_bad_rows_to_the_errors_file(
    env: dict[str, str], user_id: int, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "in.csv",
        "phone_number;name;plan\n+393331234567;Maria;pro\n12;Bad;free\n+447400123456;John\n",
    )
    bad = tmp_path / "bad.csv"
    result = runner.invoke(
        app,
        ["contacts", "import", str(source), "--user", str(user_id), "--errors", str(bad)],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "created" in result.stdout and "First invalid rows" in result.stdout
    assert "2 bad row(s) written to" in result.stdout
    assert list(csv.reader(bad.open(encoding="utf-8"))) == [
        ["line", "reason", "phone_number", "name", "plan"],
        ["3", "phone_number: missing country code: start with + or 00", "12", "Bad", "free"],
        ["4", "expected 3 fields, got 2", "+447400123456", "John"],
    ]


def test_import_strict_writes_nothing_on_a_bad_row_and_json_reports_counts(
    env: dict[str, str], user_id: int, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.csv", "phone_number\n+393331234567\nnope\n")
    command = ["contacts", "import", str(source), "--user", str(user_id)]
    strict = runner.invoke(app, [*command, "--strict"], env=env)
    assert strict.exit_code == 1
    assert "1 invalid row(s), nothing was imported" in strict.stderr
    done = runner.invoke(app, [*command, "--json"], env=env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert (report["created"], report["invalid"], report["batches"]) == (1, 1, 1)
    again = json.loads(runner.invoke(app, [*command, "--json"], env=env).stdout)
    assert (again["created"], again["updated"]) == (0, 1)


def test_import_for_an_unknown_user_fails(env: dict[str, str], tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "phone_number\n+393331234567\n")
    result = runner.invoke(app, ["contacts", "import", str(source), "--user", "99"], env=env)
    assert result.exit_code == 1
    assert "user 99 does not exist" in result.stderr


def test_export_to_stdout_reimports_to_the_same_file(
    env: dict[str, str], user_id: int, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "in.csv",
        'phone_number,name,has_opted_out,plan\n+393331234567,"A, B",1,pro\n+14155552671,C,0,\n',
    )
    runner.invoke(app, ["contacts", "import", str(source), "--user", str(user_id)], env=env)
    exported = runner.invoke(app, ["contacts", "export", "--user", str(user_id)], env=env)
    assert exported.exit_code == 0, exported.output
    assert exported.stdout_bytes == (
        b"phone_number,name,has_opted_out,plan\r\n"
        b'+393331234567,"A, B",1,pro\r\n'
        b"+14155552671,C,0,\r\n"
    )
    again = write(tmp_path / "again.csv", exported.stdout_bytes.decode())
    report = runner.invoke(
        app, ["contacts", "import", str(again), "--user", str(user_id), "--json"], env=env
    )
    assert json.loads(report.stdout)["updated"] == 2
    missing = runner.invoke(
        app, ["contacts", "export", "--user", str(user_id), "--segment", "7"], env=env
    )
    assert missing.exit_code == 1
    assert "segment 7 does not exist" in missing.stderr


def test_demo_makes_a_user_with_contacts_and_exact_segments(
    env: dict[str, str], db: Database
) -> None:
    result = runner.invoke(
        app, ["demo", "--contacts", "400", "--seed", "5", "--today", "2026-12-01", "--json"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert (made["contacts"], made["segments"]) == (400, len(demo.CATALOGUE))
    assert made["api_key"].startswith("sgk_")
    assert stale_counts(db, made["user_id"]) == {}
    exported = runner.invoke(app, ["contacts", "export", "--user", str(made["user_id"])], env=env)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    expected = list(demo.contacts(400, seed=5, today=date(2026, 12, 1)))
    assert sorted(row["phone_number"] for row in rows) == sorted(c.phone.e164 for c in expected)


# -- a real crash ------------------------------------------------------------------------


def _demo_csv(path: Path, generated: list[demo.DemoContact]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        keys = list(demo.PARAMETER_KEYS)
        handle.write(",".join(csv_io.export_header(keys)) + "\n")
        writer = csv.writer(handle, lineterminator="\n")
        for contact in generated:
            writer.writerow(
                [contact.phone.e164, contact.name, int(contact.has_opted_out)]
                + [contact.custom_parameters.get(key, "") for key in keys]
            )


def _reader_processes(source: Path) -> list[int]:
    """Pids of the reader processes staging `source` (Linux's /proc; none elsewhere)."""
    found: list[int] = []
    if not Path("/proc").is_dir():
        return found
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not a process
            continue
        if b"segmenti.contacts.reader_process" in command and str(source).encode() in command:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    "rows", [20_000, 75_000], ids=["read-in-process", "staged-by-reader-process"]
)
def test_killing_the_import_leaves_whole_batches_and_exact_counts(
    env: dict[str, str], user_id: int, db: Database, tmp_path: Path, rows: int
) -> None:
    batch = 250
    source = tmp_path / "big.csv"
    generated = list(demo.contacts(rows, seed=11, today=date(2026, 12, 1)))
    _demo_csv(source, generated)
    by_reader = contacts_cli._File(source).parallel
    if rows == 75_000:
        assert source.stat().st_size >= contacts_cli.PARALLEL_FROM_BYTES
        if not by_reader:
            pytest.skip("one CPU: the CLI reads every file in its own process")
        if not Path("/proc").is_dir():
            pytest.skip("finding the reader process reads Linux's /proc")
    else:
        assert not by_reader
    expected = {c.phone.e164: len(c.custom_parameters) for c in generated}
    # Segments present, so every batch also adjusts counts.
    segment_params = [s.api_params() for s in demo.CATALOGUE if s.type == "filter"]
    with db.write() as session:
        for params in segment_params:
            create_segment(session, user_id=user_id, data=segment_input(Params.from_json(params),
                                                                         db.settings))  # fmt: skip
    executable = str(Path(sys.executable).parent / "segmenti")
    command = [executable, "contacts", "import", str(source),
               "--user", str(user_id), "--batch-size", str(batch)]  # fmt: skip
    scratch = tmp_path / "scratch"  # where a killed import leaves its staging directory
    scratch.mkdir()
    process = subprocess.Popen(
        command,
        env={**os.environ, **env, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with db.read() as session:
                count = session.execute(
                    select(func.count()).select_from(contacts).where(contacts.c.user_id == user_id)
                ).scalar_one()
            if count >= 4 * batch:
                break
            time.sleep(0.005)
        assert process.poll() is None, "the import finished before it could be killed"
        if by_reader:
            assert _reader_processes(source), "no reader process"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    # The reader process notices its parent is gone and exits by itself.
    deadline = time.monotonic() + 30
    while _reader_processes(source) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _reader_processes(source) == []
    with db.read() as session:
        numbers = dict(
            session.execute(
                select(contacts.c.phone_number, contacts.c.id).where(contacts.c.user_id == user_id)
            ).all()
        )
        parameter_rows = dict(
            session.execute(
                select(contact_parameters.c.contact_id, func.count())
                .where(contact_parameters.c.user_id == user_id)
                .group_by(contact_parameters.c.contact_id)
            ).all()
        )
    # Whole batches only: every number is distinct, so a batch is `batch` new contacts.
    assert 0 < len(numbers) < len(expected)
    assert len(numbers) % batch == 0
    # Every contact has all of its parameter rows.
    assert all(parameter_rows.get(i, 0) == expected[n] for n, i in numbers.items())
    assert stale_counts(db, user_id) == {}


def test_a_segment_export_chooses_opted_out_members_as_the_api_does(
    env: dict[str, str], user_id: int, db: Database, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "in.csv",
        "phone_number,has_opted_out\n+393331234567,1\n+393331234568,0\n+393331234569,0\n",
    )
    runner.invoke(app, ["contacts", "import", str(source), "--user", str(user_id)], env=env)
    numbers = "+393331234567,+393331234568"
    with db.write() as session:
        segment = create_segment(
            session,
            user_id=user_id,
            data=segment_input(Params.from_json({"name": "s", "phone_numbers": numbers}),
                               db.settings),
        )  # fmt: skip

    def exported(*flags: str) -> list[list[str]]:
        result = runner.invoke(
            app,
            ["contacts", "export", "--user", str(user_id), "--segment", str(segment), *flags],
            env=env,
        )
        assert result.exit_code == 0, result.output
        return [row[:3] for row in csv.reader(io.StringIO(result.stdout))][1:]

    assert exported() == [["+393331234568", "", "0"]]
    assert exported("--include-opted-out") == [["+393331234567", "", "1"],
                                               ["+393331234568", "", "0"]]  # fmt: skip
    assert exported("--has-opted-out", "1") == [["+393331234567", "", "1"]]
    assert exported("--has-opted-out", "0", "--include-opted-out") == [["+393331234568", "", "0"]]
    refused = runner.invoke(
        app,
        ["contacts", "export", "--user", str(user_id), "--segment", str(segment),
         "--has-opted-out", "maybe"],
        env=env,
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "has_opted_out must be a boolean" in refused.stderr
