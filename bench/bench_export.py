"""Speed and memory of the CSV export over real HTTP and through the CLI.

    .venv/bin/python -m bench.bench_export [--contacts 1000000] [--workdir DIR]

Builds (once, kept in --workdir for later runs) a SQLite database with one user whose
contacts are the import benchmark's demo contacts (five custom parameters) and one
filter segment (`plan` is `free`, about 62% of them); then starts `segmenti serve` and
downloads `GET /api/contacts.csv` and `GET /api/segments/{id}/contacts.csv` (with
`include_opted_out=1`: all its members, as before the export left opted-out ones out)
reading as fast as it can, and times `segmenti contacts export`. Reports seconds, rows/s, MiB/s
and the peak RSS of the server and of the CLI, which stay flat because both stream.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.bench_import import write_csv

SEGMENTI = str(Path(sys.executable).parent / "segmenti")


def prepare(workdir: Path, count: int) -> tuple[dict[str, str], dict[str, Any]]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SEGMENTI_DATABASE_URL": f"sqlite:///{workdir / f'export-{count}.db'}"}
    meta_path = workdir / f"export-{count}.json"
    if meta_path.exists():
        return env, json.loads(meta_path.read_text())
    source = workdir / f"export-{count}.csv"
    write_csv(source, count, seed=1)
    made = subprocess.run(
        [SEGMENTI, "users", "create", "bench", "--json"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    meta = json.loads(made.stdout)
    subprocess.run(
        [SEGMENTI, "contacts", "import", str(source), "--user", str(meta["user_id"]), "--json"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    source.unlink()
    meta_path.write_text(json.dumps(meta))
    return env, meta


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far: steadier than wall time on a
    machine that is doing other work."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def download(client: httpx.Client, url: str, server_pid: int) -> dict[str, Any]:
    cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    size = rows = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
            rows += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    return {
        "rows": rows - 1,
        "mib": round(size / 2**20, 1),
        "seconds": round(elapsed, 2),
        "rows_per_s": round((rows - 1) / elapsed),
        "mib_per_s": round(size / 2**20 / elapsed, 1),
        "server_cpu_s": round(cpu_seconds(server_pid) - cpu_before, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/segmenti-bench-export"))
    args = parser.parse_args()
    env, meta = prepare(args.workdir, args.contacts)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [SEGMENTI, "serve", "--port", str(port)],
        env={**env, "SEGMENTI_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        headers = {"Authorization": f"Bearer {meta['api_key']}"}
        with httpx.Client(headers=headers, timeout=120) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get(f"{base}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            segment = client.post(
                f"{base}/api/segments",
                data={
                    "name": "free plan",
                    "filters_custom_parameter_key[0]": "plan",
                    "filters_custom_parameter_condition[0]": "exact",
                    "filters_custom_parameter_value[0]": "free",
                },
            ).json()["data"]
            try:
                results = {
                    "contacts.csv": download(client, f"{base}/api/contacts.csv", server.pid),
                    "segment.csv": download(
                        client,
                        f"{base}/api/segments/{segment['id']}/contacts.csv?include_opted_out=1",
                        server.pid,
                    ),
                    "server_peak_rss_mib": peak_rss_mib(server.pid),
                }
            finally:
                client.delete(f"{base}/api/segments/{segment['id']}")
    finally:
        server.terminate()
        server.wait(30)
    command = [SEGMENTI, "contacts", "export", "--user", str(meta["user_id"])]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit("the CLI export failed")
    elapsed = time.perf_counter() - started
    results["cli"] = {
        "seconds": round(elapsed, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "rows_per_s": round(args.contacts / elapsed),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }
    print(json.dumps({"contacts": args.contacts, **results}))


if __name__ == "__main__":
    main()
