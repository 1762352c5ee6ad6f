"""Membership events, webhooks and snapshots at scale (issue 15), an item of bench/run.py.

Run by `make bench` on its database (1M contacts, 1,000 segments; QUICK=1: 100k, 100),
against its `segmenti serve` (started with SEGMENTI_WEBHOOKS_ALLOW_PRIVATE=1 and its
deliverer off: deliveries are measured here, with a deliverer of this process):

  * contact create p50, with no segment watched and with 50 filter segments watched;
  * an import of new contacts with no segment watched and with 50 watched (rate ratio);
  * a redefinition of a watched custom segment that moves 100,000 contacts (half out,
    half in; at 100k contacts, half as many): its time and its events;
  * a snapshot of a segment holding every contact: time and server memory;
  * 10,000 events delivered to a receiver on loopback, signatures checked by it.

While the redefinition and the snapshot run, another user writes contacts: the longest
of those writes says how long one tenant's large write held up another's (SQLite has one
write lock).
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func

from bench import data, http_client
from segmenti import auth
from segmenti.contacts.upload import import_upload
from segmenti.db.engine import Database
from segmenti.db.tables import events, segments
from segmenti.db.tenant import Tenant
from segmenti.settings import Settings
from segmenti.webhooks.deliverer import Deliverer

WATCHED = 50
BOTH = ["segment.contact_entered", "segment.contact_exited"]
DELIVERED = 10_000


def measure(
    client: http_client.Client,
    db: Database,
    *,
    user_id: int,
    rng: random.Random,
    taken: set[str],
    contact_count: int,
    reps: int,
    memory: Callable[[], dict[str, float]],
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with receiving() as receiver:
        # -- contact create and import, unwatched -----------------------------------
        unwatched_ms = _creates(client, rng, taken, reps)
        import_size = max(5_000, contact_count // 20)
        unwatched_import = _import(db, user_id=user_id, rng=rng, taken=taken, size=import_size)
        # -- 50 watched --------------------------------------------------------------
        with db.read() as session:
            watched = list(
                session.execute(
                    Tenant(user_id)
                    .select(segments.c.id)
                    .where(segments.c.type == "filter")
                    .order_by(segments.c.id.desc())
                    .limit(WATCHED)
                ).scalars()
            )
        webhook = _webhook(client, receiver.url, watched)
        watched_ms = _creates(client, rng, taken, reps)
        watched_import = _import(db, user_id=user_id, rng=rng, taken=taken, size=import_size)
        results["contact_create_50_watched"] = {
            **http_client.percentiles(watched_ms),
            "floor": {**http_client.percentiles(unwatched_ms), "how": "no segment watched"},
        }
        results["import_50_watched"] = {
            "ms": round(watched_import * 1000, 1),
            "contacts": import_size,
            "rate_ratio_vs_unwatched": round(unwatched_import / watched_import, 3),
            "floor": {"ms": round(unwatched_import * 1000, 1), "how": "no segment watched"},
        }
        # -- a redefinition moving many contacts -------------------------------------
        other = _OtherTenant(db)
        moves = min(100_000, contact_count // 2)
        ids = _contact_ids(db, user_id=user_id, count=moves * 3 // 2)
        half = moves // 2
        segment = _segment(client, "redefined", ids[:moves])
        _watch(client, webhook, [*watched, segment])
        newest_before = _newest_event(db, user_id)
        with other.writing() as waits:
            elapsed, response = client.timed(
                "POST",
                f"/api/segments/{segment}",
                {"contacts_ids": ",".join(map(str, ids[half : half + moves]))},
            )
        assert response.status == 200, response.body[:300]
        recorded = _events_since(db, user_id, newest_before)
        results["redefinition_events"] = {
            "ms": round(elapsed, 1),
            "events": recorded,
            "other_tenant_write_max_ms": round(max(waits, default=0.0), 1),
            "other_tenant_writes": len(waits),
        }
        # -- a snapshot of every contact ---------------------------------------------
        everyone = _create(client, {"name": "everyone", "type": "filter"})
        before = memory()
        with other.writing() as waits:
            elapsed, response = client.timed("POST", f"/api/segments/{everyone}/snapshots")
        assert response.status == 201, response.body[:300]
        snapshot = response.json()["data"]["id"]
        total = client.request("GET", f"/api/snapshots/{snapshot}").json()["data"]
        after = memory()
        results["snapshot_every_contact"] = {
            "ms": round(elapsed, 1),
            "members": total["total_contacts"],
            "server_rss_mb_before": before["rss_mb"],
            "server_rss_mb_after": after["rss_mb"],
            "other_tenant_write_max_ms": round(max(waits, default=0.0), 1),
        }
        client.request("DELETE", f"/api/snapshots/{snapshot}")
        # -- 10,000 events delivered -------------------------------------------------
        client.request("DELETE", f"/api/webhooks/{webhook}")
        fresh = _webhook(client, receiver.url, [])
        deliveries = _create(
            client, {"name": "delivered", "contacts_ids": ",".join(map(str, ids[:DELIVERED]))}
        )
        _watch(client, fresh, [deliveries])
        shifted = ids[DELIVERED // 2 : DELIVERED // 2 + DELIVERED]
        response = client.request(
            "POST", f"/api/segments/{deliveries}", {"contacts_ids": ",".join(map(str, shifted))}
        )
        assert response.status == 200, response.body[:300]
        receiver.reset()
        settings = Settings(
            database_url=str(db.engine.url.render_as_string(hide_password=False)),
            webhooks_allow_private=True,
        )
        start = time.perf_counter()
        stop = threading.Event()
        deliverer = Deliverer(db, settings)
        thread = threading.Thread(target=deliverer.run, args=(stop,), daemon=True)
        thread.start()
        receiver.wait(DELIVERED, seconds=120)
        elapsed_s = time.perf_counter() - start
        stop.set()
        thread.join(30)
        results["deliver_10000_events"] = {
            "ms": round(elapsed_s * 1000, 1),
            "events": receiver.count,
            "requests": receiver.requests,
        }
        client.request("DELETE", f"/api/webhooks/{fresh}")
    return results


# -- pieces ---------------------------------------------------------------------------


def _creates(
    client: http_client.Client, rng: random.Random, taken: set[str], reps: int
) -> list[float]:
    samples = []
    for info in data.phone_numbers(rng, reps, taken=taken):
        body = {"phone_number": info.e164, "custom_parameters": data.parameters_for(rng, info)}
        elapsed, response = client.timed("POST", "/api/contacts", body)
        assert response.status == 201, response.body[:300]
        samples.append(elapsed)
    return samples


def _import(db: Database, *, user_id: int, rng: random.Random, taken: set[str], size: int) -> float:
    lines = ["phone_number,name,plan,age,city,language"]
    for info in data.phone_numbers(rng, size, taken=taken):
        p = data.parameters_for(rng, info)
        lines.append(
            f"{info.e164},,{p.get('plan', '')},{p.get('age', '')},"
            f"{p.get('city', '')},{p.get('language', '')}"
        )
    upload = io.BytesIO(("\n".join(lines) + "\n").encode())
    start = time.perf_counter()
    report = import_upload(db, user_id=user_id, upload=upload, strict=False)
    elapsed = time.perf_counter() - start
    assert report.created == size, report.as_dict()
    return elapsed


def _create(client: http_client.Client, body: dict[str, Any]) -> int:
    response = client.request("POST", "/api/segments", body)
    assert response.status == 201, response.body[:300]
    return int(response.json()["data"]["id"])


def _segment(client: http_client.Client, name: str, ids: list[int]) -> int:
    return _create(client, {"name": name, "contacts_ids": ",".join(map(str, ids))})


def _webhook(client: http_client.Client, url: str, segment_ids: list[int]) -> int:
    body: dict[str, Any] = {"url": url, "events": BOTH}
    if segment_ids:
        body["segments_ids"] = ",".join(map(str, segment_ids))
    response = client.request("POST", "/api/webhooks", body)
    assert response.status == 201, response.body[:300]
    created = response.json()["data"]
    return int(created["id"])


def _watch(client: http_client.Client, webhook: int, segment_ids: list[int]) -> None:
    response = client.request(
        "POST", f"/api/webhooks/{webhook}", {"segments_ids": ",".join(map(str, segment_ids))}
    )
    assert response.status == 200, response.body[:300]


def _contact_ids(db: Database, *, user_id: int, count: int) -> list[int]:
    from segmenti.db.tables import contacts

    with db.read() as session:
        return list(
            session.execute(
                Tenant(user_id)
                .select(contacts.c.id)
                .where(contacts.c.has_opted_out.is_(False))
                .order_by(contacts.c.id)
                .limit(count)
            ).scalars()
        )


def _newest_event(db: Database, user_id: int) -> int:
    with db.read() as session:
        return int(session.execute(Tenant(user_id).select(func.max(events.c.id))).scalar() or 0)


def _events_since(db: Database, user_id: int, after: int) -> int:
    with db.read() as session:
        return int(
            session.execute(
                Tenant(user_id).select(func.count(events.c.id)).where(events.c.id > after)
            ).scalar_one()
        )


class _OtherTenant:
    """Another user writing a contact every 50 ms: how long do its writes wait?"""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.write() as session:
            self.user_id, _ = auth.create_user(session, name="bystander")
        self.rng = random.Random(7)
        self.taken: set[str] = set()

    @contextmanager
    def writing(self) -> Iterator[list[float]]:
        from segmenti.contacts import service

        waits: list[float] = []
        stop = threading.Event()

        def run() -> None:
            numbers = data.phone_numbers(self.rng, 100_000, taken=self.taken)
            while not stop.is_set():
                info = next(numbers)
                start = time.perf_counter()
                with self.db.write() as session:
                    service.create_contact(
                        session,
                        user_id=self.user_id,
                        data=service.ContactInput(phone=info),
                    )
                waits.append((time.perf_counter() - start) * 1000)
                stop.wait(0.05)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield waits
        finally:
            stop.set()
            thread.join(60)


# -- a receiver -----------------------------------------------------------------------


class _Receiver:
    def __init__(self) -> None:
        self.url = ""
        self.count = 0
        self.requests = 0
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.count = self.requests = 0

    def wait(self, target: int, *, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.count < target and time.monotonic() < deadline:
            time.sleep(0.01)


@contextmanager
def receiving() -> Iterator[_Receiver]:
    receiver = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with receiver.lock:
                receiver.requests += 1
                receiver.count += len(body["events"])
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
