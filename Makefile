# ai-router developer tasks. PYTHON defaults to the active interpreter; override: make bench PYTHON=/path/to/python
PYTHON ?= python

.PHONY: bench bench-quick bench-stages

bench:          ## full benchmark (~5 min): rewrites docs/performance.md, raw data in bench/results/latest.json
	$(PYTHON) -m bench

bench-quick:    ## ~90 s: shorter runs, no workers scaling, no profile
	$(PYTHON) -m bench --quick

bench-stages:   ## per-stage microbenchmark only (µs per request at 300, 2k, 20k prompt tokens)
	$(PYTHON) -m bench.stages
