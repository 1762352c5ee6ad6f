"""Filter trees (issue 14) in the benchmark suite.

`with_trees` makes 30% of the suite's segments trees of up to 10 leaves in 3 levels
(equality, ranges, `in`, `exists`, dates, and some substring leaves), so every other
item (contact writes, lists, recount) runs with them. `measure` adds:
  * tree_create / tree_preview: POST a tree of equality, range, `in`, `exists` and date
    leaves (target p50 < 500 ms);
  * tree_substring_create: a tree with substring leaves, against a hand-written COUNT of
    the same tree in the same run (target within 1.5x of it);
  * midnight_100: the day's shift of 100 segments with dates relative to today, in
    process (`segments.service.dates_current` with the clock a day on), as CPU seconds
    of this process (on SQLite, the database's work too; target < 10 s), every shifted
    total checked against a count from scratch.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import data, http_client
from segmenti import auth, timeutil
from segmenti.db import migrate
from segmenti.db.engine import Database
from segmenti.db.tables import segments
from segmenti.db.tenant import Tenant
from segmenti.membership import counts, filters
from segmenti.segments import service
from segmenti.segments.service import SegmentInput
from segmenti.settings import Settings

TREE_SHARE = 0.3
MAX_LEAVES = 10
LEVELS = 3
DATED_SEGMENTS = 100

TARGETS = {
    "tree_create": ("p50 < 500 ms", lambda r: r["p50_ms"] < 500),
    "tree_preview": ("p50 < 500 ms", lambda r: r["p50_ms"] < 500),
    "tree_substring_create": (
        "within 1.5x floor",
        lambda r: r["p50_ms"] < 1.5 * r["floor"]["p50_ms"],
    ),
    "midnight_100": ("< 10 s CPU", lambda r: r["ms"] < 10_000),
}


# -- trees ------------------------------------------------------------------------------


def random_leaf(rng: random.Random, *, substring: bool = False) -> dict[str, Any]:
    """One leaf in the API's JSON form, on the suite's keys (bench/data.py)."""
    roll = rng.random()
    if substring and roll < 0.5:
        condition = rng.choice(["contains", "not_contains", "ends_with"])
        return {"key": "city", "condition": condition, "value": rng.choice(["an", "o", "ri"])}
    if roll < 0.25:
        key = rng.choice(["plan", "language"])
        value = rng.choice(data.CONDITION_VALUES[key])
        return {"key": key, "condition": rng.choice(["exact", "not_exact"]), "value": value}
    if roll < 0.45:
        condition = rng.choice(["bigger_than", "lower_than"])
        return {"key": "age", "condition": condition, "value": str(rng.randint(20, 60))}
    if roll < 0.65:
        key = rng.choice(["plan", "city"])
        choices = rng.sample(data.CONDITION_VALUES[key], 3)
        return {"key": key, "condition": rng.choice(["in", "not_in"]), "value": choices}
    if roll < 0.8:
        key = rng.choice(["city", "nickname", "language"])
        return {"key": key, "condition": rng.choice(["exists", "not_exists"])}
    # Relative to today: the suite's sign-up dates run from 2019 for 2,500 days.
    days = rng.randint(300, 2500)
    value = f"-{days}d" if rng.random() < 0.7 else (data.FIRST_SIGNUP + timedelta(days)).isoformat()
    condition = rng.choice(["date_after", "date_before"])
    return {"key": "signup_date", "condition": condition, "value": value}


def random_tree(rng: random.Random, *, substring: bool = False) -> dict[str, Any]:
    """A tree of 2 to MAX_LEAVES leaves in at most LEVELS levels of groups."""
    budget = [rng.randint(2, MAX_LEAVES)]

    def group(level: int) -> dict[str, Any]:
        children: list[Any] = []
        for _ in range(rng.randint(2, 4)):
            if budget[0] <= 0:
                break
            if level < LEVELS and budget[0] > 2 and rng.random() < 0.35:
                child = group(level + 1)
            else:
                budget[0] -= 1
                child = random_leaf(rng, substring=substring)
            children.append({"not": child} if rng.random() < 0.15 else child)
        kind = "all" if level % 2 == 1 or rng.random() < 0.5 else "any"
        return {kind: children or [random_leaf(rng, substring=substring)]}

    return group(1)


def with_trees(rng: random.Random, plans: list[data.SegmentPlan]) -> list[data.SegmentPlan]:
    """The suite's plans with TREE_SHARE of all segments turned into trees (taken from
    its flat filters, which it has 70% of)."""
    wanted = int(len(plans) * TREE_SHARE)
    changed = []
    for plan in plans:
        if wanted and plan.filter is not None:
            wanted -= 1
            tree = random_tree(rng, substring=rng.random() < 0.2)
            spec = filters.build_tree(tree, max_leaves=100)
            plan = data.SegmentPlan(plan.name.replace("filter", "tree"), filter=spec)
        changed.append(plan)
    return changed


# -- the hand-written floor of a substring tree -------------------------------------------

SUBSTRING_TREE = {
    "all": [
        {"key": "city", "condition": "contains", "value": "an"},
        {
            "any": [
                {"key": "plan", "condition": "in", "value": ["pro", "business"]},
                {"key": "language", "condition": "ends_with", "value": "n"},
            ]
        },
        {"not": {"key": "city", "condition": "starts_with", "value": "mil"}},
    ]
}


def _substring_floor(dialect: str) -> str:
    contains = (
        "instr(value_folded, 'an') > 0" if dialect == "sqlite" else "strpos(value_folded, 'an') > 0"
    )
    ends = (
        "substr(value_folded, -1) = 'n'" if dialect == "sqlite" else "right(value_folded, 1) = 'n'"
    )
    return f"""
SELECT COUNT(*) FROM contacts c
WHERE c.user_id = :user AND NOT c.has_opted_out
  AND c.id IN (SELECT contact_id FROM contact_parameters
               WHERE user_id = :user AND key = 'city' AND {contains})
  AND (c.id IN (SELECT contact_id FROM contact_parameters
                WHERE user_id = :user AND key = 'plan' AND value_folded IN ('pro', 'business'))
       OR c.id IN (SELECT contact_id FROM contact_parameters
                   WHERE user_id = :user AND key = 'language' AND {ends}))
  AND c.id NOT IN (SELECT contact_id FROM contact_parameters
                   WHERE user_id = :user AND key = 'city'
                     AND value_folded >= 'mil' AND value_folded < 'mim')
"""  # noqa: S608 - the benchmark's own constant SQL


# -- measuring ----------------------------------------------------------------------------


def _create_and_preview(
    client: http_client.Client, trees: list[dict[str, Any]]
) -> tuple[list[float], list[float]]:
    created, create_ms, preview_ms = [], [], []
    for number, tree in enumerate(trees):
        elapsed, response = client.timed(
            "POST", "/api/segments", {"name": f"bench tree {number}", "filter": tree}
        )
        assert response.status == 201, response.body[:300]
        create_ms.append(elapsed)
        created.append(response.json()["data"]["id"])
        elapsed, response = client.timed("POST", "/api/segments/preview", {"filter": tree})
        assert response.status == 200, response.body[:300]
        preview_ms.append(elapsed)
    for segment_id in created:
        client.request("DELETE", f"/api/segments/{segment_id}")
    return create_ms, preview_ms


def measure(
    client: http_client.Client, db: Database, *, user_id: int, reps: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed + 14)
    trees = [random_tree(rng) for _ in range(reps)]
    create_ms, preview_ms = _create_and_preview(client, trees)
    results: dict[str, Any] = {
        "tree_create": http_client.percentiles(create_ms),
        "tree_preview": http_client.percentiles(preview_ms),
    }
    substring_ms, _ = _create_and_preview(client, [SUBSTRING_TREE] * reps)
    elapsed, response = client.timed("POST", "/api/segments/preview", {"filter": SUBSTRING_TREE})
    total = response.json()["data"]["total_contacts"]
    floor_sql = _substring_floor(db.engine.dialect.name)
    floor_ms = []
    floor_count = None
    for _ in range(min(reps, 10)):
        start = time.perf_counter()
        with db.engine.connect() as connection:
            floor_count = connection.execute(text(floor_sql), {"user": user_id}).scalar()
        floor_ms.append((time.perf_counter() - start) * 1000)
    assert floor_count == total, (floor_count, total)
    results["tree_substring_create"] = {
        **http_client.percentiles(substring_ms),
        "total_contacts": total,
        "floor": {**http_client.percentiles(floor_ms), "count": floor_count, "sql": floor_sql},
    }
    results["midnight_100"] = measure_midnight(db, user_id=user_id, rng=rng)
    return results


def measure_midnight(db: Database, *, user_id: int, rng: random.Random) -> dict[str, Any]:
    """100 segments with relative dates counted for today, then the shift to tomorrow."""
    today = timeutil.now()
    created = []
    for number in range(DATED_SEGMENTS):
        tree = {
            "all": [
                {
                    "key": "signup_date",
                    "condition": rng.choice(["date_after", "date_before"]),
                    "value": f"-{rng.randint(300, 2500)}d",
                },
                random_leaf(rng),
            ]
        }
        spec = filters.build_tree(tree, max_leaves=100)
        with db.write() as session:
            created.append(
                service.create_segment(
                    session, user_id=user_id, data=SegmentInput(name=f"dated {number}", filter=spec)
                )
            )
    tomorrow = datetime.combine(today.date() + timedelta(days=1), datetime.min.time())
    with timeutil.clock_at(lambda: tomorrow + timedelta(seconds=1)):
        cpu, wall = time.process_time(), time.perf_counter()
        service.dates_current(db, user_id=user_id)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        wrong = 0
        with db.read() as session:
            rows = session.execute(
                Tenant(user_id)
                .select(segments.c.id, segments.c.settings, segments.c.total_contacts)
                .where(segments.c.id.in_(created))
            ).all()
            for row in rows:
                spec = filters.Filter.from_settings(row.settings).on(tomorrow.date())
                wrong += (
                    counts.count_filter(session, user_id=user_id, spec=spec) != row.total_contacts
                )
    with db.write() as session:
        session.execute(Tenant(user_id).delete(segments).where(segments.c.id.in_(created)))
        counts.segments_changed(session, user_id=user_id)
    assert wrong == 0, f"{wrong} shifted totals differ from a count from scratch"
    return {"ms": round(cpu * 1000, 1), "wall_ms": round(wall * 1000, 1), "segments": len(created)}


# -- in process, on a kept database ---------------------------------------------------------


def _database(kept: str, *, contacts: int, seed: int) -> tuple[Database, int]:
    """The kept database (a SQLite file, or a PostgreSQL URL of an existing, empty or
    kept database) with `contacts` contacts of one user: built when it has no user yet,
    reused as it is otherwise."""
    url = kept if kept.startswith("postgresql") else f"sqlite:///{kept}"
    if not kept.startswith("postgresql"):
        Path(kept).parent.mkdir(parents=True, exist_ok=True)
    db = Database(Settings(database_url=url), statement_timeout_seconds=0)
    migrate.upgrade(db.engine)
    with db.read() as session:
        user_id = session.execute(text("SELECT min(id) FROM users")).scalar_one()
    if user_id is None:
        with db.write() as session:
            user_id, _key = auth.create_user(session, name="bench")
        rng = random.Random(seed)
        contact_list = list(data.make_contacts(rng, contacts, taken=set()))
        data.load_contacts(db.engine, user_id=user_id, contact_list=contact_list)
    return db, int(user_id)


def _timed(work: Any) -> tuple[float, float, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = work()
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000, result


def measure_in_process(
    db: Database, *, user_id: int, reps: int, seed: int, repeat: int = 1
) -> dict[str, Any]:
    """The count and the preview of the trees `measure` creates, in process: per tree
    the milliseconds of CPU (on SQLite, the database's work too) and of wall, the
    median of `repeat` runs, and whether the count walked from a driving condition."""
    rng = random.Random(seed + 14)
    trees = [random_tree(rng) for _ in range(reps)]
    rows = []
    for number, tree in enumerate(trees):
        spec = filters.build_tree(tree, max_leaves=100).on(timeutil.today())
        runs = []
        for _ in range(repeat):
            with db.read() as session:
                count_cpu, count_wall, total = _timed(
                    lambda s=session, f=spec: counts.count_filter(s, user_id=user_id, spec=f)
                )
                preview_cpu, preview_wall, _ = _timed(
                    lambda s=session, f=spec: service.preview_segment(
                        s, user_id=user_id, data=SegmentInput(filter=f)
                    )
                )
                choose = getattr(counts, "selective_driver", None)
                walked = (
                    choose is not None and choose(session, user_id=user_id, spec=spec) is not None
                )
            runs.append((count_cpu, count_wall, preview_cpu, preview_wall))
        count_cpu, count_wall, preview_cpu, preview_wall = (
            statistics.median(run[field] for run in runs) for field in range(4)
        )
        rows.append(
            {
                "tree": number,
                "total": total,
                "walked": walked,
                "count_cpu_ms": round(count_cpu, 1),
                "count_wall_ms": round(count_wall, 1),
                "preview_cpu_ms": round(preview_cpu, 1),
                "preview_wall_ms": round(preview_wall, 1),
            }
        )
    summary = {
        name: round(statistics.median(row[name] for row in rows), 1)
        for name in ("count_cpu_ms", "count_wall_ms", "preview_cpu_ms", "preview_wall_ms")
    }
    return {"p50": summary, "trees": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description="Filter trees' count and preview, in process")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument(
        "--reuse", required=True, help="SQLite file or PostgreSQL URL, built once and kept"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1, help="runs per tree (median)")
    parser.add_argument("--json", type=Path, help="write every tree's figures here")
    args = parser.parse_args()
    db, user_id = _database(args.reuse, contacts=args.contacts, seed=args.seed)
    result = measure_in_process(
        db, user_id=user_id, reps=args.reps, seed=args.seed, repeat=args.repeat
    )
    for row in result["trees"]:
        print(json.dumps(row))
    print("p50", json.dumps(result["p50"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
