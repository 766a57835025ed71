# Two entry points: `make demo` and `make test`. Both set up what they need, idempotently.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hf-llm-trainer
CLIENTS := $(CACHE)/clients
CLAUDE_CODE_VERSION := 2.1.328
GEMINI_CLI_VERSION := 0.61.0
# One worker more than cores keeps both busy while a test waits (on a job, a server); the suite is CPU-bound, and more
# workers only add contention (clean runs on 2 cores: 2 workers 833 s, 3 workers 805 s, 4 workers 843 s).
TEST_WORKERS ?= 3

.PHONY: setup clients test demo lint agents shared clean

setup: $(VENV)/.installed

# uv installs the lock in 40 s where pip takes 90, compiling bytecode as pip does (with PYTHONDONTWRITEBYTECODE set,
# nothing else would); it does not read pip's configuration, so it is given the local wheels pip would use (this
# machine's CPU build of torch).
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)

$(VENV)/.installed: requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $$(grep '^uv==' requirements-dev.lock)
	links="$${PIP_FIND_LINKS:-$(FIND_LINKS)}"; \
		$(PY) -m uv pip install -q --compile-bytecode --python $(PY) $${links:+--find-links $$links} -r requirements-dev.lock
	touch $@

# The agent clients that validate our manifests, from npm, cached across clones.
clients: $(CLIENTS)/.installed-$(CLAUDE_CODE_VERSION)-$(GEMINI_CLI_VERSION)

$(CLIENTS)/.installed-$(CLAUDE_CODE_VERSION)-$(GEMINI_CLI_VERSION):
	mkdir -p $(CLIENTS)
	npm install --silent --no-audit --no-fund --prefix $(CLIENTS) \
		@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @google/gemini-cli@$(GEMINI_CLI_VERSION)
	touch $@

test: setup clients
	@start=$$(date +%s); HFLT_CLIENTS=$(CLIENTS)/node_modules/.bin $(PY) -m pytest -q -n $(TEST_WORKERS) tests; rc=$$?; \
		echo "make test: pytest took $$(( $$(date +%s) - start )) s on $$(nproc) cores ($(TEST_WORKERS) workers)"; \
		if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

demo: setup
	$(PY) tools/demo.py

lint: setup
	$(PY) -m ruff check skills tools tests bench

agents: setup
	$(PY) tools/sync_agents.py

# Code several scripts share: one source in tools/shared/, copied to the end of each script; headers pin the dev lock's stack.
shared: setup
	$(PY) tools/sync_shared.py

clean:
	rm -rf $(VENV) demo_outputs
