# The commands of the README and docs/development.md. Every target works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-pg pg-start pg-stop lint format bench docs messages clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/segmenti serve

test: install
	$(BIN)/pytest -q

# Throwaway PostgreSQL cluster for tests (loopback only, trust auth, not durable).
PG_DIR ?= var/pg

pg-start:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || bash scripts/install-postgres.sh
	@bash scripts/pg-cluster.sh start $(PG_DIR)

pg-stop:
	@bash scripts/pg-cluster.sh stop $(PG_DIR)

# The test suite against PostgreSQL; the cluster is stopped afterwards, whatever happens,
# and pytest's exit code is kept.
test-pg: install
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || bash scripts/install-postgres.sh
	@trap 'bash scripts/pg-cluster.sh stop $(PG_DIR)' EXIT; trap 'exit 130' INT TERM; \
	url=$$(bash scripts/pg-cluster.sh start $(PG_DIR)) || exit $$?; \
	echo "SEGMENTI_TEST_DATABASE_URL=$$url"; \
	SEGMENTI_TEST_DATABASE_URL="$$url" $(BIN)/pytest -q; rc=$$?; \
	exit $$rc

# lint-imports checks the layers (pyproject.toml's [tool.importlinter]); vulture finds
# dead code ([tool.vulture], vulture_whitelist.py).
lint: install
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/vulture

format: install
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

# The benchmark suite (bench/run.py): 1M contacts and 1,000 segments, about 10 minutes;
# QUICK=1 for 100k contacts and 100 segments. Results go to bench/results/.
bench: install
	$(BIN)/python -m bench.run $(if $(QUICK),--quick) $(BENCH_ARGS)

# The documentation site (MkDocs, Material theme) into build/site; --strict fails on a
# broken link or anchor. Not --quiet: it drops the warnings that --strict counts, so a
# broken link would pass.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The dashboard's translations (docs/dashboard.md, "Translating"): extract every message
# of the web layer into messages.pot, merge it into each language's messages.po (new
# messages empty, near matches marked fuzzy), then check them: the catalog test lists
# what is still missing, empty or fuzzy. The .po files are compiled when the server
# starts, so there is no compiled file to keep up to date.
TRANSLATIONS := src/segmenti/web/translations

messages: install
	$(BIN)/pybabel extract --mapping-file babel.cfg --keywords N_ --add-comments Translators: \
		--project Segmenti --version "" --copyright-holder "" --msgid-bugs-address "" \
		--no-wrap --sort-by-file --add-location=file --output-file $(TRANSLATIONS)/messages.pot src/segmenti/web
	$(BIN)/pybabel update --input-file $(TRANSLATIONS)/messages.pot --output-dir $(TRANSLATIONS) \
		--domain messages --no-wrap --ignore-obsolete --previous
	$(BIN)/pytest -q tests/web/test_catalogs.py

clean:
	rm -rf $(VENV) var build .pytest_cache .mypy_cache .ruff_cache
