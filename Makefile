# ceb-gateway: everything a newcomer needs is `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8631
DATA   ?= var/sandbox

.PHONY: run test lint typecheck unit fuzz bench demo sysdeps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,postgres]'
	touch $(STAMP)

# System tools used by the interoperability tests and benchmarks (xmlsec1, xmllint, wrk, valgrind).
sysdeps:
	@if ! command -v xmlsec1 >/dev/null || ! command -v xmllint >/dev/null || ! command -v wrk >/dev/null \
	    || ! command -v valgrind >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1 libxml2-utils wrk valgrind) >/dev/null 2>&1 \
	      || echo "warning: could not install xmlsec1/xmllint/wrk/valgrind; interop tests will say why they skip"; \
	  else echo "note: xmlsec1/xmllint/wrk/valgrind missing and cannot apt-get here"; fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/cebgw serve --sandbox --port $(PORT) --data $(DATA)

# A gateway on a temporary store, the customs sandbox and simulated enterprises, end to end.
demo: $(STAMP)
	$(VENV)/bin/cebgw demo

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway tests bench samples xsd/src

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

test: $(STAMP) sysdeps lint typecheck unit

# The structural fuzzer (tests/service/test_fuzz.py) with many more generated messages than `make test`.
FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP)
	CEBGW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -o timeout=0 tests/service/test_fuzz.py

# Each bench prints its figures and its rows of issue 14's table (ours, the C-library ceiling and the
# peer, measured in the same run); the last command prints all those rows as one table.
BENCH_ROWS ?= var/bench-rows.jsonl
bench: $(STAMP) sysdeps
	@mkdir -p $(dir $(BENCH_ROWS)) && rm -f $(BENCH_ROWS)
	$(PY) bench/validate.py --rows $(BENCH_ROWS)
	$(PY) bench/sign.py --rows $(BENCH_ROWS)
	$(PY) bench/gateway.py --rows $(BENCH_ROWS)
	$(PY) bench/demo.py
	$(PY) bench/instructions.py --rows $(BENCH_ROWS)
	$(PY) bench/_table.py $(BENCH_ROWS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
