"""HTTP load test: a steady mix of reads and writes against a real `segmenti serve`.

    .venv/bin/python bench/load.py [--seconds 60] [--concurrency 16] [--workers 2]
                                   [--write-share 0.3] [--contacts 2000] [--seed 1]

Starts `segmenti serve` on a free loopback port with a fresh SQLite file (or, with
--database-url, on that database), seeds one user with contacts (custom parameters) and
segments of every type, then holds `--concurrency` clients, each sending its next request
as soon as the previous one is answered, for `--seconds`. The mix: reads (segment and
contact lists with search and paging, single segments and contacts) and writes (contacts
created, updated, opted out and deleted, which moves the maintained counts of every
filter segment; filter segments redefined; small bulk segments created). Any status
other than the expected one is an error. Prints requests/s, latency percentiles and the
error count; exits 1 when there was an error. Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

PLANS = ("free", "pro", "business")


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    database_url: str, port: int, workers: int, scratch: str
) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "SEGMENTI_DATABASE_URL": database_url,
        "SEGMENTI_LOG_LEVEL": "warning",
        "PROMETHEUS_MULTIPROC_DIR": scratch,  # removed with the scratch directory
    }
    command = [str(Path(sys.executable).parent / "segmenti"), "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # one access line per request: not what is measured
        text=True,
    )
    assert server.stdout is not None
    api_key = ""
    for line in server.stdout:
        if line.strip().startswith("sgk_"):
            api_key = line.strip()
            break
    if not api_key:
        server.kill()
        raise SystemExit("the server printed no API key (use a fresh database)")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return server, api_key
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not become ready")


async def seed(client: httpx.AsyncClient, contacts: int, rng: random.Random) -> list[int]:
    ids: list[int] = []
    for start in range(0, contacts, 500):
        numbers = "\n".join(f"+39333{n:07d}" for n in range(start, min(start + 500, contacts)))
        response = await client.post(
            "/api/segments", data={"name": f"seed {start}", "phone_numbers": numbers}
        )
        response.raise_for_status()
    page = 1
    while True:
        listing = (
            await client.get("/api/contacts", params={"page": page, "results_per_page": 1000})
        ).json()
        ids += [row["id"] for row in listing["data"]]
        if listing["links"]["next"] is None:
            break
        page += 1
    for contact_id in rng.sample(ids, min(len(ids), 600)):
        response = await client.post(
            f"/api/contacts/{contact_id}",
            json={
                "custom_parameters": {"plan": rng.choice(PLANS), "age": str(rng.randint(18, 90))}
            },
        )
        response.raise_for_status()
    for plan in PLANS:
        await client.post(
            "/api/segments",
            json={
                "name": f"plan {plan}",
                "filters_custom_parameter_key": ["plan"],
                "filters_custom_parameter_value": [plan],
            },
        )
    await client.post(
        "/api/segments",
        json={
            "name": "over 40 in Italy",
            "filters_countries": ["IT"],
            "filters_custom_parameter_key": ["age"],
            "filters_custom_parameter_condition": ["bigger_than"],
            "filters_custom_parameter_value": ["40"],
        },
    )
    await client.post("/api/segments", json={"name": "hand-picked", "contacts_ids": ids[:50]})
    return ids


class Workload:
    """The next request of one client, and the status it must get."""

    def __init__(
        self,
        client: int,
        rng: random.Random,
        contact_ids: list[int],
        segment_ids: list[int],
        write_share: float,
    ) -> None:
        self.rng = rng
        self.contact_ids = contact_ids
        self.segment_ids = segment_ids
        self.write_share = write_share
        self.next_number = 1_000_000 + client * 100_000  # each client its own numbers

    def next(self) -> tuple[str, str, str, dict[str, Any], int]:
        """(kind, method, path, request kwargs, expected status)."""
        rng = self.rng
        if rng.random() >= self.write_share:
            choice = rng.random()
            if choice < 0.3:
                return (
                    "list segments",
                    "GET",
                    "/api/segments",
                    {"params": {"results_per_page": 100}},
                    200,
                )
            if choice < 0.5:
                return (
                    "get segment",
                    "GET",
                    f"/api/segments/{rng.choice(self.segment_ids)}",
                    {},
                    200,
                )
            if choice < 0.75:
                return (
                    "list contacts",
                    "GET",
                    "/api/contacts",
                    {"params": {"page": rng.randint(1, 20), "search": "333"}},
                    200,
                )
            return ("get contact", "GET", f"/api/contacts/{rng.choice(self.contact_ids)}", {}, 200)
        choice = rng.random()
        if choice < 0.35:
            self.next_number += 1
            return (
                "create contact",
                "POST",
                "/api/contacts",
                {
                    "json": {
                        "phone_number": f"+39334{self.next_number:07d}",
                        "custom_parameters": {
                            "plan": rng.choice(PLANS),
                            "age": str(rng.randint(18, 90)),
                        },
                    }
                },
                201,
            )
        if choice < 0.75:
            return (
                "update contact",
                "POST",
                f"/api/contacts/{rng.choice(self.contact_ids)}",
                {
                    "json": {
                        "custom_parameters": {
                            "plan": rng.choice(PLANS),
                            "age": str(rng.randint(18, 90)),
                        },
                        "has_opted_out": rng.random() < 0.1,
                    }
                },
                200,
            )
        if choice < 0.9:
            return (
                "redefine segment",
                "POST",
                f"/api/segments/{self.segment_ids[0]}",
                {
                    "json": {
                        "filters_custom_parameter_key": ["plan"],
                        "filters_custom_parameter_value": [rng.choice(PLANS)],
                    }
                },
                200,
            )
        start = rng.randrange(0, 1_000_000)
        numbers = [f"+39335{n:07d}" for n in range(start, start + 20)]
        return (
            "create bulk",
            "POST",
            "/api/segments",
            {"json": {"name": "load bulk", "phone_numbers": numbers}},
            201,
        )


async def client_loop(
    client: httpx.AsyncClient, workload: Workload, stats: Stats, until: float
) -> None:
    while time.monotonic() < until:
        kind, method, path, kwargs, expected = workload.next()
        started = time.perf_counter()
        try:
            response = await client.request(method, path, **kwargs)
            status = response.status_code
        except httpx.HTTPError as exc:
            stats.errors[f"{kind}: {exc.__class__.__name__}"] += 1
            continue
        stats.latencies.append(time.perf_counter() - started)
        stats.by_kind[kind] += 1
        if status != expected:
            stats.errors[f"{kind}: {status} {response.text[:120]}"] += 1


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


async def run(args: argparse.Namespace, base: str, api_key: str) -> Stats:
    rng = random.Random(args.seed)
    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=args.concurrency + 2)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=60, limits=limits
    ) as client:
        contact_ids = await seed(client, args.contacts, rng)
        listing = (await client.get("/api/segments", params={"results_per_page": 1000})).json()
        segment_ids = [row["id"] for row in listing["data"] if row["type"] == "filter"]
        stats = Stats()
        until = time.monotonic() + args.seconds
        loops = [
            client_loop(
                client,
                Workload(
                    n, random.Random(args.seed + n), contact_ids, segment_ids, args.write_share
                ),
                stats,
                until,
            )
            for n in range(args.concurrency)
        ]
        started = time.monotonic()
        await asyncio.gather(*loops)
        stats.by_kind["_elapsed_ms"] = int((time.monotonic() - started) * 1000)
        return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write-share", type=float, default=0.3)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    if not 0 < args.seconds <= 600:
        raise SystemExit("--seconds must be in (0, 600]: the load test is bounded")
    with tempfile.TemporaryDirectory(prefix="segmenti-load-") as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/load.db"
        port = free_port()
        metrics_dir = Path(scratch) / "metrics"
        metrics_dir.mkdir()
        server, api_key = start_server(database_url, port, args.workers, str(metrics_dir))
        try:
            stats = asyncio.run(run(args, f"http://127.0.0.1:{port}", api_key))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
    elapsed = stats.by_kind.pop("_elapsed_ms") / 1000
    latencies = sorted(stats.latencies)
    total = len(latencies)
    errors = sum(stats.errors.values())
    print(
        f"{total} requests in {elapsed:.1f} s with {args.concurrency} clients, "
        f"{args.workers} server workers, {args.write_share:.0%} writes"
    )
    print(f"throughput: {total / elapsed:.0f} requests/s")
    print(
        "latency ms: "
        + ", ".join(
            f"p{int(share * 100)} {percentile(latencies, share) * 1000:.1f}"
            for share in (0.5, 0.9, 0.99)
        )
        + f", max {latencies[-1] * 1000:.1f}"
    )
    print("mix: " + ", ".join(f"{kind} {count}" for kind, count in sorted(stats.by_kind.items())))
    print(f"errors: {errors}")
    for error, count in stats.errors.most_common(10):
        print(f"  {count} x {error}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
