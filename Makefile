# make run  — install, migrate, seed, serve the site + API and run the worker (embedded defaults).
# make test — install and run the whole suite (PostgreSQL and Redis on 127.0.0.1 unless told otherwise).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed-stamp

# Tests run on the real services: the machine's PostgreSQL and Redis by default, or whatever CI exports.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/kiwiwhale)
TEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/11)

.PHONY: install run worker migrate test lint fmt clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

migrate: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed_catalog

run: migrate
	PORT=$(PORT) DEBUG=$${DEBUG:-1} scripts/run.sh

# Scale-out: one more worker process against the configured broker (set REDIS_URL / DATABASE_URL).
worker: install
	$(BIN)/celery -A kiwiwhale worker --loglevel=info

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
