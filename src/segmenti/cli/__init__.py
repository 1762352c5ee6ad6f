"""The `segmenti` command: serve, users, keys here; contacts, segments and demo in the
modules beside this one. It calls the same services as the API and the dashboard."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from segmenti import auth, errors
from segmenti.cli import contacts as contacts_cli
from segmenti.cli import db as db_cli
from segmenti.cli import demo as demo_cli
from segmenti.cli import segments as segments_cli
from segmenti.cli.support import console, database, fail
from segmenti.db.tables import MAX_ID
from segmenti.settings import Settings
from segmenti.timeutil import render

app = typer.Typer(help="Segmenti: contacts and segments for SMS platforms.", no_args_is_help=True)
users_app = typer.Typer(help="Users (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(contacts_cli.app, name="contacts")
app.command()(demo_cli.demo)
app.add_typer(segments_cli.app, name="segments")
app.add_typer(db_cli.app, name="db")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON line.")]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Runs the HTTP API. On a database without users, creates one and prints its key."""
    # Here, not at the top: the server's modules (FastAPI, prometheus) would cost every
    # other command a fifth of a second to start.
    import uvicorn

    from segmenti import observability, server

    settings = Settings.from_env()
    db = database(settings)
    with db.write() as session:
        if not auth.has_users(session):
            user_id, api_key = auth.create_user(session, name="admin")
            console.print(
                f"Created user {user_id} with API key (shown once, keep it):\n"
                f"  [bold]{api_key}[/bold]\n"
                f'  export SEGMENTI_API_KEY="{api_key}"'
            )
    db.dispose()
    observability.configure_logging(settings)
    observability.prepare_multiprocess(workers, port)
    if settings.deliverer_in_serve:
        from segmenti.webhooks import deliverer

        deliverer.start_in_background(settings)
    console.print(f"Segmenti on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "segmenti.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=30,
        access_log=False,  # RequestContext writes one line per request, with its id
        log_config=None,  # configure_logging's handlers (JSON with SEGMENTI_LOG_JSON)
        log_level=settings.log_level,
        **server.uvicorn_options(settings),  # proxies believed, header and idle bounds
    )


@app.command()
def deliver(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit.")] = False,
) -> None:
    """Runs the webhook deliverer (also run by `segmenti serve` unless
    SEGMENTI_DELIVERER_IN_SERVE=0); several may run at once."""
    import signal
    import threading

    from segmenti.webhooks.deliverer import Deliverer

    settings = Settings.from_env()
    db = database(settings)
    worker = Deliverer(db, settings)
    try:
        if once:
            console.print(f"{worker.run_once()} delivery attempts made")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        console.print("Delivering webhooks (Ctrl-C stops)")
        try:
            worker.run(stop)
        except KeyboardInterrupt:
            stop.set()
    finally:
        db.dispose()


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="The user's name.")], as_json: JsonOption = False
) -> None:
    """Creates a user and its first API key."""
    db = database()
    try:
        with db.write() as session:
            user_id, api_key = auth.create_user(session, name=name)
    except errors.SegmentiError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"user_id": user_id, "api_key": api_key}))
    else:
        console.print(f"user_id: {user_id}\napi_key: {api_key}  (shown once)")


@keys_app.command("create")
def keys_create(
    user_id: Annotated[int, typer.Argument(help="The user to make a key for.", min=1, max=MAX_ID)],
    as_json: JsonOption = False,
) -> None:
    """Makes another API key for a user."""
    db = database()
    try:
        with db.write() as session:
            key_id, api_key = auth.create_key(session, user_id=user_id)
    except errors.SegmentiError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"key_id": key_id, "user_id": user_id, "api_key": api_key}))
    else:
        console.print(f"key_id: {key_id}\napi_key: {api_key}  (shown once)")


@keys_app.command("list")
def keys_list(
    user_id: Annotated[int, typer.Argument(help="Whose keys.", min=1, max=MAX_ID)],
    as_json: JsonOption = False,
) -> None:
    """Lists a user's keys (their prefixes only: keys are stored hashed)."""
    db = database()
    with db.read() as session:
        if not auth.user_exists(session, user_id=user_id):
            raise fail(errors.NotFound(f"user {user_id} does not exist"))
        keys = auth.list_keys(session, user_id=user_id)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "key_id": key.id,
                        "prefix": key.prefix,
                        "datetime": render(key.datetime),
                        "revoked_at": render(key.revoked_at),
                    }
                    for key in keys
                ]
            )
        )
        return
    table = Table("key_id", "prefix", "created", "revoked")
    for key in keys:
        table.add_row(
            str(key.id), key.prefix + "…", render(key.datetime), render(key.revoked_at) or "-"
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key to revoke.", min=1, max=MAX_ID)],
) -> None:
    """Revokes a key: requests with it answer 401 from now on."""
    db = database()
    try:
        with db.write() as session:
            auth.revoke_key(session, key_id=key_id)
    except errors.SegmentiError as exc:
        raise fail(exc) from None
    console.print(f"key {key_id} revoked")
