# make run  — install, migrate, seed, then serve the site + API (uvicorn, DEBUG off) with a worker and beat,
#             supervised, on embedded defaults (SQLite in WAL mode, local files, a broker in files under var/).
# make dev  — the same with DEBUG on and Django's auto-reloading development server, for working on the code.
# make test — install and run the whole suite (PostgreSQL and Redis on 127.0.0.1 unless told otherwise).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed-stamp

# Tests run on the real services: the machine's PostgreSQL and Redis by default, or whatever CI exports.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/kiwiwhale)
TEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/11)

.PHONY: install run dev worker migrate secret-key bench test lint fmt clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet -e clients/python
	touch $(STAMP)

install: $(STAMP)

# A SECRET_KEY generated once and kept under var/ (the environment's SECRET_KEY wins when set).
secret-key:
	@mkdir -p var
	@test -n "$$SECRET_KEY" || test -s var/secret_key || \
		(umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key)

migrate: install secret-key
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_catalog

# Production-grade on embedded defaults: DEBUG off, plain http on the loopback, static files by whitenoise.
run: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@# The operator's first run: the first superuser (its password printed once) and a one-time setup link.
	$(BIN)/python manage.py setup_link --base-url "http://127.0.0.1:$(PORT)"
	@echo "KiwiWhale: http://127.0.0.1:$(PORT)/  (API: /api/v1/, admin: /admin/)  — Ctrl-C stops everything."
	PATH="$(CURDIR)/$(BIN):$$PATH" PORT=$(PORT) SERVE_PLAIN_HTTP=1 \
		$(BIN)/python scripts/supervise.py web=scripts/web worker=scripts/worker beat=scripts/beat

# A developer's server: DEBUG on, auto-reload on code changes, the same worker and beat.
dev: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py seed_catalog
	PATH="$(CURDIR)/$(BIN):$$PATH" DEBUG=1 $(BIN)/python scripts/supervise.py \
		"web=$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)" worker=scripts/worker beat=scripts/beat

# Scale-out: one more worker process against the configured broker (set REDIS_URL / DATABASE_URL).
worker: install
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/worker

# KiwiWhale against a bare Django floor on the same server and database (PostgreSQL and Redis on 127.0.0.1, or
# BENCH_DATABASE_URL / BENCH_REDIS_URL, ports BENCH_PORT and the next, else free ones); writes docs/performance.md.
# Add BENCH_ARGS="--million" for P5.
bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/python bench/run.py --write $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install
	$(BIN)/ruff check .
	@# Browser tests drive Debian's chromium through Playwright (never `playwright install`): install it when missing.
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "The browser tests need /usr/bin/chromium: run 'apt-get install chromium' as root."; fi; \
	fi
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) SECRET_KEY=test-only-secret-key \
		DEBUG=0 $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
