# Everything a fresh machine needs: `make demo` runs the main job, `make test` runs the tests.
# The virtual environment is built on first use from pyproject.toml, pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint format test-strict test-live bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/syft-flwr-gdrive demo $(ARGS)

# Style and types first (make lint), then every test: what CI runs (.ci/run), before test-strict.
test: lint
	$(PY) -m pytest $(ARGS)

# Style (ruff format + ruff check) and types (mypy), configured in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Rewrite what `make lint` can fix by itself.
format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The tests that start no process and wait on no lag (under a minute): `-m "not slow"`, tests/README.md.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(ARGS)

# The federation tests and the reliability suite again, against the strict fake Drive
# (only what Drive documents; docs/drive-assumptions.md).
test-strict: $(STAMP)
	SYFT_FLWR_DRIVE_PROFILE=strict $(PY) -m pytest tests/e2e tests/reliability $(ARGS)

# One test per row of docs/drive-assumptions.md: against the fake, and against real Google
# Drive when SYFT_FLWR_LIVE_{A,B}_{TOKEN,EMAIL} name two accounts (skipped otherwise).
test-live: $(STAMP)
	$(PY) -m pytest tests/live -p no:cacheprovider $(ARGS)

# Every benchmark once in its --quick form (bench/README.md; ~6 min); figures are printed, never judged.
BENCHES := calls_per_round round_latency large_payload broadcast idle_poll quota soak
bench: $(STAMP)
	set -e; for b in $(BENCHES); do echo "== bench/$$b.py --quick"; $(PY) bench/$$b.py --quick $(ARGS); done

clean-venv:
	rm -rf $(VENV)
