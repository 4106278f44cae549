# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck compose browser nginx postgres clock unit bench clean mutation lock first-names

# Installed from the lock file (exact versions), then the project itself without resolving.
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# After a change to the dependencies in pyproject.toml: new lock files, then `make test`.
# `make lock UPGRADE=--upgrade` moves every pin to the newest release allowed.
LOCK := $(BIN)/uv pip compile pyproject.toml --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 --quiet $(UPGRADE)
lock: $(STAMP)
	$(LOCK) -o requirements.lock
	$(LOCK) --extra dev -o requirements-dev.lock

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
# Debian packages some tests drive, installed as root with apt; elsewhere those tests are
# skipped with the reason. $(1): the command, $(2): the package, $(3): what needs it.
define debian_package
	@command -v $(1) >/dev/null 2>&1 || test -x /usr/sbin/$(1) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing $(2) from Debian for $(3)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "$(2) is missing and needs root with apt to install: $(3) are skipped"; \
	  fi; }
endef

browser:
	$(call debian_package,chromium,chromium,the browser tests)

# The TLS tests put nginx (a TLS-terminating gRPC proxy) before the dev server.
nginx:
	$(call debian_package,nginx,nginx,the TLS tests)

# The record's tests run on PostgreSQL as well as SQLite (a server of their own, in /tmp).
postgres:
	$(call debian_package,pg_ctlcluster,postgresql,the record's PostgreSQL tests)

unit: $(STAMP)
	$(BIN)/pytest -q

# The suite again as if it were other moments (tests/conftest.py, PM_TEST_CLOCK): a late
# Sunday, a weekday morning, a leap day in another year. Tests whose servers run on the
# machine's clock (the dev server) are skipped there; the rest must not notice.
CLOCKS := "sunday 23:30" "wednesday 08:00" "leap-day 12:00"

clock: $(STAMP)
	@for moment in $(CLOCKS); do \
	  echo "== the suite at the next $$moment UTC"; \
	  PM_TEST_CLOCK="$$moment" $(BIN)/pytest -q -p no:cacheprovider || exit 1; \
	done

test: lint typecheck compose browser nginx postgres clock unit

# Mutation testing of the functions that decide (README, "Mutation testing"); not in `test`.
# `?` stands for mutmut's `ǁ` between a class and its method in a mutant's name.
MUTATE := 'api.signatures.*' 'domain.scheduling.*' 'domain.blameless.*' \
  'domain.followup_timing.*' 'readmodel.x_actions_query*' 'readmodel.x_due_between*' \
  'readmodel.x_iso*' 'readmodel.x_ranked_actions*' 'integrations.github.x__number*' \
  'integrations.github.x_ticket_status_of*' 'integrations.jira.x_ticket_status_of*' \
  'integrations.jira.x_idempotency_label*' 'integrations.jira.x__labels*' \
  $(foreach f,find_ticket create_ticket ticket_status _ensure_label _login _ref,\
    'integrations.github.x?GitHubTracker?$(f)__*')

mutation: $(STAMP)
	rm -rf mutants && mkdir mutants
	$(BIN)/mutmut run $(MUTATE) > mutants/run.log 2>&1 || { tail -c 3000 mutants/run.log; exit 1; }
	@grep -a 'mutations/second' mutants/run.log
	@# Per module: killed/total; any other mutant must be listed as equivalent, or this fails.
	@$(BIN)/mutmut results --all true | awk -F': ' ' \
	  FNR == NR { if (match($$0, /^- `[^`]+`/)) equivalent[substr($$0, 4, RLENGTH - 4)] = 1; next } \
	  $$2 == "not checked" { next } \
	  { name = $$1; sub(/^ +/, "", name); module = name; sub(/\.[^.]*$$/, "", module); \
	    total[module]++; if ($$2 == "killed") killed[module]++; \
	    else if (name in equivalent) known[module]++; \
	    else { left++; print "  " $$2 ": " name } } \
	  END { for (m in total) printf "%-24s %4d/%-4d killed, %d equivalent\n", \
	          m, killed[m], total[m], known[m] | "sort"; close("sort"); \
	        if (left) { print left " mutants neither killed nor in tests/mutation-equivalents.md"; exit 1 } }' \
	  tests/mutation-equivalents.md -

bench: $(STAMP)
	$(BIN)/python benchmarks/lifecycle.py

# The blameless check's first-name list, derived again from names-dataset (a development
# dependency) after its version changes; a test compares the shipped list with it.
first-names: $(STAMP)
	$(BIN)/python -m integrations.lexicon

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
