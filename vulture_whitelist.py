"""Names vulture (`make lint`) cannot see used: each is called or read by a framework, by
name or by protocol, not by our code. Vulture reads this file as code that uses them.
Decorated routes, commands, fixtures and SQLAlchemy hooks are left out by the decorator
rules in pyproject.toml's [tool.vulture]; Alembic's module names by its ignore_names."""

# ruff: noqa: B018, F821

# uvicorn: `segmenti serve` names the app factory by string; server.uvicorn_options names
# the HTTP protocol class by string.
create_app_from_env
BoundedHttpToolsProtocol
should_exit  # uvicorn.Server's flag, set by tests/served.py to stop it

# Python's io protocol (contacts/upload.py's _Unclosable).
readable
readinto

# logging: a Formatter's record attribute and its time converter.
asctime
converter

# sqlite3: the connection attribute SQLAlchemy's connect hook sets (db/engine.py).
isolation_level

# SQLAlchemy: a custom SQL function's caching flag (membership/filters.py).
inherit_cache

# Jinja templates read these fields of web/queries.Preview.
new_contacts
note

# html.parser.HTMLParser's callbacks (tests/web/test_pages.py).
handle_starttag
handle_endtag

# http.server's hooks and flag (tests/webhooks/receiver.py, a webhook receiver).
log_message
do_POST
daemon_threads
