# Python 3.11 exactly: spyne 2.14 (its last release) does not import on 3.12+.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-asterisk test-asterisk-ajam lint chaos bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

# `make demo DEMO_ARGS="--transport http"`: the same demo over AJAM (the simulator's HTTP manager).
demo: $(STAMP)
	$(BIN)/asterisk-bridge demo $(DEMO_ARGS)

# The whole suite, the linter first (what .ci/run runs).
test: lint
	$(BIN)/python -m pytest -q

# The development lane, < 60 s: no chaos, no live Asterisk, no long fuzz or multi-second runs;
# 4 workers because the suite mostly waits (fsync, PostgreSQL, sockets), not computes.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 4 -m "not slow and not chaos and not asterisk"

lint: $(STAMP)
	$(BIN)/ruff check .

# The live call-story suite alone, against ../shared/asterisk (or $$BRIDGE_ASTERISK_DIR): a
# missing Asterisk fails here instead of skipping.
test-asterisk: $(STAMP)
	BRIDGE_REQUIRE_ASTERISK=1 $(BIN)/python -m pytest -q tests/asterisk

# The same live suite with the bridge reading Asterisk over AJAM (BRIDGE_LIVE_TRANSPORT=http|digest).
test-asterisk-ajam: $(STAMP)
	BRIDGE_REQUIRE_ASTERISK=1 BRIDGE_LIVE_TRANSPORT=$(or $(LIVE_TRANSPORT),http) $(BIN)/python -m pytest -q tests/asterisk

chaos: $(STAMP)
	BRIDGE_CHAOS_FULL=1 $(BIN)/python -m pytest -q tests/chaos -s

# `make bench BENCH_ARGS=--quick` for the ~5 min version; REPORT.md + latency_vs_load.png either way.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
