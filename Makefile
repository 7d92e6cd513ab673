# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.paperfeed-installed
DATA ?= paperfeed-data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-postgres install lint browser lighthouse postgres demo clean

# torch is installed first and pinned: the CPU build is what this machine serves
# for 2.13.0, and any later unpinned resolution would pull several GB of CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	HF_HUB_OFFLINE=1 $(BIN)/paperfeed models prepare
	touch $(STAMP)

install: $(STAMP)

# Chromium for the Playwright tests comes from Debian's package (Playwright's own
# browser download is not reachable here).
# axe-core (the accessibility check's rules) comes from the npm registry into .cache/axe,
# Lighthouse (the home page's scores) into .cache/lighthouse.
AXE := .cache/axe/node_modules/axe-core/axe.min.js
LIGHTHOUSE := .cache/lighthouse/node_modules/.bin/lighthouse

browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@test -f $(AXE) || npm install --silent --no-audit --no-fund --prefix .cache/axe axe-core@4 >/dev/null
	@test -x $(LIGHTHOUSE) || npm install --silent --no-audit --no-fund --prefix .cache/lighthouse lighthouse@12 >/dev/null

# Lighthouse's four scores for the home page of a throw-away demo server (fails below 95)
lighthouse: $(STAMP) browser
	HF_HUB_OFFLINE=1 PAPERFEED_LIGHTHOUSE=$(CURDIR)/$(LIGHTHOUSE) $(BIN)/paperfeed bench lighthouse --min-score 95

# PostgreSQL's server binaries for the tests on the second engine (Debian's package; the tests
# start a throwaway cluster of their own: initdb in a temporary directory, unix socket only).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)

# The store, web and mail tests that run a second time on PostgreSQL (README, "Development").
PG_TESTS := tests/test_ingest.py tests/test_harvest.py tests/test_web_accounts.py tests/test_web_http.py \
	tests/test_digest_core.py tests/test_digest_crash.py tests/test_library_store.py tests/test_library_web.py \
	tests/test_foryou_warm.py tests/test_foryou_saved.py tests/test_search_service.py

demo: $(STAMP)
	$(BIN)/paperfeed --data $(DATA) ingest --demo

run: $(STAMP) demo
	$(BIN)/paperfeed --data $(DATA) serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check paperfeed tests bench

test: $(STAMP) browser postgres
	$(BIN)/ruff check paperfeed tests bench
	HF_HUB_OFFLINE=1 PAPERFEED_AXE_JS=$(CURDIR)/$(AXE) PAPERFEED_LIGHTHOUSE=$(CURDIR)/$(LIGHTHOUSE) $(BIN)/python -m pytest -q
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --engine postgres $(PG_TESTS)

# The whole suite on PostgreSQL (a throwaway cluster, as above): every test but the few marked
# sqlite_only, which are about the SQLite file itself.
test-postgres: $(STAMP) browser postgres
	$(BIN)/ruff check paperfeed tests bench
	HF_HUB_OFFLINE=1 PAPERFEED_AXE_JS=$(CURDIR)/$(AXE) PAPERFEED_LIGHTHOUSE=$(CURDIR)/$(LIGHTHOUSE) $(BIN)/python -m pytest -q --engine postgres

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache test-artifacts .cache
