# The two commands of the README. Both work on a fresh machine: they create .venv and
# install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The MongoDB wire-protocol server the tests run (SecantusDB, GPL-2.0, beta): its own venv,
# never imported by the app or the tests, only started as a process (tests/support/mongo.py).
TESTDB := .venv-testdb
TESTDB_STAMP := $(TESTDB)/.installed
SECANTUS := SecantusDB==0.7.0b3
# The console's browser tests (tests/browser/) drive Debian's Chromium through its chromedriver:
# installed with apt when missing (sudo unless root), `apt-get update` first when apt does not know them.
BROWSER_STAMP := $(VENV)/.chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo) env DEBIAN_FRONTEND=noninteractive
BROWSER_PACKAGES := chromium chromium-driver

.PHONY: run test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(TESTDB_STAMP):
	$(PYTHON) -m venv $(TESTDB)
	$(TESTDB)/bin/python -m pip install --quiet '$(SECANTUS)'
	touch $(TESTDB_STAMP)

$(BROWSER_STAMP): $(BIN)/python
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		$(SUDO) apt-get install -y --no-install-recommends $(BROWSER_PACKAGES) \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $(BROWSER_PACKAGES); }; \
	fi
	touch $(BROWSER_STAMP)

install: $(STAMP)

# FACADE_MLLP_PORT=2575 make run: also HL7 v2 ADT over MLLP on port 2575 (README: HL7 v2 over MLLP).
run: $(STAMP)
	$(BIN)/nhs-fhir-facade serve

# Lint, format check and type check first (settings in pyproject.toml; mypy checks server,
# capability and mappings): any failure stops the target before pytest.
test: $(STAMP) $(TESTDB_STAMP) $(BROWSER_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Every benchmark script, one after another (each about a minute at most, loopback only; the
# soak runs 60 s here, 2 minutes by default). They print figures side by side and assert
# nothing; run them on a machine as quiet as you can.
BENCH_SCRIPTS := bench/cache_bench.py "bench/cache_bench.py --store memory" bench/patient_read_latency.py \
	bench/fanout.py bench/single_flight.py bench/gpconnect_allergies.py bench/cpt_detail_fanout.py \
	"bench/soak.py --seconds 60"

bench: $(STAMP) $(TESTDB_STAMP)
	@for script in $(BENCH_SCRIPTS); do \
		echo "== python $$script"; \
		PYTHONPATH=. $(BIN)/python $$script || exit 1; \
		echo; \
	done

clean:
	rm -rf $(VENV) $(TESTDB) .pytest_cache .hypothesis .mypy_cache .ruff_cache
