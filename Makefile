# ai-router developer tasks: `make demo` sets up and runs the demo, `make test` sets up and runs the tests.
# Everything runs from the project's own virtualenv (.venv), created on first use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= $(BIN)/python

.PHONY: test-sdk setup demo lint test bench-setup bench bench-quick bench-stages

$(BIN)/ai-router: pyproject.toml setup.py router/routing/_textscan.c router/_wire.c router/redaction/_prescan.c  # the C parts compile at install
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/ai-router  ## create .venv and install the project with its test extra

demo: setup             ## the router in front of two simulated upstreams on http://127.0.0.1:8082
	$(BIN)/ai-router demo

lint: setup             ## ruff
	$(BIN)/ruff check .

test: lint              ## ruff, then the whole test suite
	$(BIN)/pytest -q

test-sdk: setup         ## the openai/anthropic SDKs' own generated API tests through the router, against Prism mocks of the specs
	$(PYTHON) -m tests.sdk.run_generated

bench-setup: setup      ## the load generator (Debian's wrk) and py-spy for the profile
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/pip install -q -e '.[test,bench]'

bench: bench-setup      ## full benchmark (~5 min): rewrites docs/performance.md, raw data in bench/results/latest.json
	$(PYTHON) -m bench

bench-quick: bench-setup  ## ~90 s: shorter runs, no workers scaling, no profile
	$(PYTHON) -m bench --quick

bench-stages: setup     ## per-stage microbenchmark only (µs per request at 300, 2k, 20k prompt tokens)
	$(PYTHON) -m bench.stages
