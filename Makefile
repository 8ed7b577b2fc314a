# Python 3.11, 3.12 or 3.13: `make test PY=python3.13` uses its own venv (.venv-3.13), so the
# interpreters never share one. The default 3.11 keeps the plain .venv.
PY ?= python3.11
PYVER := $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV ?= $(if $(filter 3.11,$(PYVER)),.venv,.venv-$(PYVER))
BIN := $(VENV)/bin
# One stamp per layer: the demo needs only the runtime; tests and benchmarks add their extras.
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed-test
BENCH := $(VENV)/.installed-bench
# Installs go through uv (PyPI's `uv`, bootstrapped into the venv by the interpreter's own pip):
# it resolves and installs in parallel, which makes a fresh `make demo` several times faster.
UV := $(BIN)/uv
INSTALL := $(UV) pip install -q --python $(BIN)/python

, := ,
.PHONY: demo test test-fast test-asterisk test-asterisk-ajam lint chaos bench clean check-python

check-python:
	@test -n "$(PYVER)" || { echo "error: '$(PY)' does not run; give PY=/path/to/python3.11 (or 3.12, 3.13)" >&2; exit 2; }

$(UV): | check-python
	test -x $(BIN)/python || $(PY) -m venv --without-pip $(VENV)
	$(PY) -m pip --python $(BIN)/python install -q uv \
	  || { $(BIN)/python -m ensurepip -q && $(BIN)/python -m pip install -q uv; }

$(RUNTIME): setup.cfg pyproject.toml $(UV)
	$(INSTALL) -e . pip
	touch $@

$(STAMP): $(RUNTIME)
	$(INSTALL) -e '.[test]'
	touch $@

$(BENCH): $(STAMP)
	$(INSTALL) -e '.[test,bench]'
	touch $@

# `make demo DEMO_ARGS="--transport http"`: the same demo over AJAM (the simulator's HTTP manager).
demo: $(RUNTIME)
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
# missing Asterisk fails here instead of skipping. One suite, parametrized by the bridge's
# transport: tcp (AMI), http (AJAM) and ari, one after the other (`make test` runs the same);
# `make test-asterisk LIVE_TRANSPORT=ari` (or a comma list, or digest) runs only those.
test-asterisk: $(STAMP)
	BRIDGE_REQUIRE_ASTERISK=1 BRIDGE_LIVE_TRANSPORT=$(or $(LIVE_TRANSPORT),tcp$(,)http$(,)ari) $(BIN)/python -m pytest -q tests/asterisk

# The live suite over AJAM only (LIVE_TRANSPORT=http|digest, default http).
test-asterisk-ajam: $(STAMP)
	BRIDGE_REQUIRE_ASTERISK=1 BRIDGE_LIVE_TRANSPORT=$(or $(LIVE_TRANSPORT),http) $(BIN)/python -m pytest -q tests/asterisk

chaos: $(STAMP)
	BRIDGE_CHAOS_FULL=1 $(BIN)/python -m pytest -q tests/chaos -s

# `make bench BENCH_ARGS=--quick` for the ~5 min version; REPORT.md + latency_vs_load.png either way.
bench: $(BENCH)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-3.* build *.egg-info .pytest_cache
