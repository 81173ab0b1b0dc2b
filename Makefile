# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Each creates .venv in the repo and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

.PHONY: venv demo test test-system-redis chaos lint typecheck proto check-proto bench clean messages

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/evalgrid demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The store, integration and authorization tests on another server binary (e.g. a system
# Redis 7: `make test-system-redis SYSTEM_REDIS=/usr/bin/redis-server`); `make test` runs all
# of them on the bundled Valkey. `.ci/run` runs both.
SYSTEM_REDIS ?=
test-system-redis: $(STAMP)
	@test -n "$(SYSTEM_REDIS)" || { echo "give SYSTEM_REDIS=PATH (a redis-server)"; exit 2; }
	EVALGRID_REDIS_SERVER="$(SYSTEM_REDIS)" $(BIN)/python -m pytest $(PYTEST_ARGS) \
		tests/store tests/integration tests/security/test_authorization_table.py

# Randomized outages on real processes: CHAOS_SCENARIOS in a row (CHAOS_SEED=N replays one).
chaos: $(STAMP)
	CHAOS_SCENARIOS=$${CHAOS_SCENARIOS:-20} $(BIN)/python -m pytest -q -s -x -m chaos tests/chaos $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Regenerate the wire stubs from proto/ (they are committed; tests check they are current).
proto: $(STAMP)
	$(BIN)/python -m evalgrid.wire_codegen proto

# Bring the message catalogues (evalgrid/locale/*/LC_MESSAGES/evalgrid.po) up to date with the
# sources' _() texts; then translate the new zh_CN entries (tests/test_i18n.py fails without).
messages: $(STAMP)
	$(BIN)/python -m evalgrid.i18n_extract

bench: $(STAMP)

	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
