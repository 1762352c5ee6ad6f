"""A small HTTP client for the benchmark suite (bench/run.py): sequential latencies over
one keep-alive connection, and throughput with concurrent clients through `wrk` when it
is installed (a bounded thread pool of keep-alive connections otherwise)."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One keep-alive connection to the server under test."""

    def __init__(self, host: str, port: int, api_key: str) -> None:
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.connection = http.client.HTTPConnection(host, port, timeout=600)

    def request(self, method: str, path: str, body: Any = None) -> Response:
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            answer = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The server closed the idle keep-alive connection: open a new one.
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=600)
            self.connection.request(method, path, body=payload, headers=headers)
            answer = self.connection.getresponse()
        return Response(answer.status, answer.read())

    def timed(self, method: str, path: str, body: Any = None) -> tuple[float, Response]:
        """(milliseconds, response) of one request."""
        start = time.perf_counter()
        response = self.request(method, path, body)
        return (time.perf_counter() - start) * 1000, response

    def close(self) -> None:
        self.connection.close()


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(at(0.95), 3),
        "max_ms": round(ordered[-1], 3),
        "n": len(ordered),
    }


def throughput(
    host: str, port: int, api_key: str, path: str, *, connections: int, seconds: int
) -> dict[str, Any]:
    """Requests per second of GET `path` with `connections` concurrent clients."""
    if shutil.which("wrk"):
        return _wrk(host, port, api_key, path, connections=connections, seconds=seconds)
    return _threads(host, port, api_key, path, connections=connections, seconds=seconds)


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(
    host: str, port: int, api_key: str, path: str, *, connections: int, seconds: int
) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {api_key}",
        f"http://{host}:{port}{path}",
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latency = {}
    for label, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)$", output, re.M):
        latency[f"p{label}_ms"] = round(float(value) * _UNIT[unit], 3)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "tool": "wrk 4 (-t2)",
        "connections": connections,
        "seconds": seconds,
        "requests_per_s": rate,
        "non_2xx": int(errors.group(1)) if errors else 0,
        **latency,
    }


def _threads(
    host: str, port: int, api_key: str, path: str, *, connections: int, seconds: int
) -> dict[str, Any]:
    deadline = time.perf_counter() + seconds
    done = [0] * connections
    failed = [0] * connections

    def run(index: int) -> None:
        client = Client(host, port, api_key)
        while time.perf_counter() < deadline:
            response = client.request("GET", path)
            done[index] += 1
            failed[index] += response.status != 200
        client.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "tool": "python threads",
        "connections": connections,
        "seconds": seconds,
        "requests_per_s": sum(done) / elapsed,
        "non_2xx": sum(failed),
    }
