# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck compose browser unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

teams.toml:
	cp teams.example.toml teams.toml
	@echo "Created teams.toml from teams.example.toml: edit it to route your teams."

run: $(STAMP) teams.toml
	$(BIN)/postmortem up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --cache-dir=/dev/null  # a stale cache once hid an error CI found

compose: $(STAMP)
	PM_ENV_FILE=.env.example $(BIN)/docker-compose -f docker-compose.yml --env-file .env.example config -q

# The dashboard's browser tests drive Debian's Chromium (Playwright cannot download one here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Chromium from Debian for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing and needs root with apt to install: browser tests are skipped"; \
	  fi; }

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck compose browser unit

bench: $(STAMP)
	$(BIN)/python benchmarks/lifecycle.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
