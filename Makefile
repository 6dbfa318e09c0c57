# Two commands on a fresh machine: `make run` and `make test`.
# The venv is (re)installed only when pyproject.toml changes: the stamp file name holds its hash.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 7860
HASH := $(shell sha256sum pyproject.toml | cut -c1-12)
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(HASH)
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test browser redis screenshots index lint validate eval bench load profile clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	rm -f $(VENV)/.installed-run-*
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	rm -f $(VENV)/.installed-*
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(RUN_STAMP)

# The app builds the index itself when the knowledge changed (and reuses it otherwise).
run: $(RUN_STAMP)
	HOST=$(HOST) PORT=$(PORT) $(PY) app.py

index: $(RUN_STAMP)
	$(PY) -m assistant index

validate: $(RUN_STAMP)
	$(PY) -m assistant validate

test: $(DEV_STAMP) browser redis
	$(PY) -m pytest

# The browser tests drive Debian's chromium: browser builds cannot be downloaded on this network.
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get install -y -q chromium >/dev/null || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }; }

# The two-replica rate-limit test starts Debian's redis-server itself (the limiter's shared store).
redis:
	@command -v redis-server >/dev/null 2>&1 || { echo "installing Debian's redis-server for the rate-limit test"; \
	  $(SUDO) apt-get install -y -q redis-server >/dev/null || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server >/dev/null; }; }

# Refresh the README's screenshots (docs/*.png) from the browser tests, with a CJK font so that Chinese shows
# as Chinese, not boxes (the tests themselves read text, not pixels, and do not need it).
screenshots: $(DEV_STAMP) browser
	@fc-list 2>/dev/null | grep -qi "noto sans cjk" || $(SUDO) apt-get install -y -q fonts-noto-cjk >/dev/null || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q fonts-noto-cjk >/dev/null; }
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/test_web_browser.py

lint: $(DEV_STAMP)
	$(PY) -m ruff check .

# Evaluation: dev and held-out sets side by side, one HTML report each (evals/README in the main README).
eval: $(RUN_STAMP)
	mkdir -p evals/results
	$(PY) -m evals run --cases evals/cases/dev.jsonl --out evals/results/dev.json
	$(PY) -m evals run --cases evals/cases/holdout.jsonl --out evals/results/holdout.json
	$(PY) -m evals report evals/results/dev.json --html evals/results/dev.html
	$(PY) -m evals report evals/results/holdout.json --html evals/results/holdout.html

# Benchmarks: never part of `make test`; results land in benchmarks/results/.
bench: $(RUN_STAMP)
	$(PY) -m benchmarks.turn_latency
	$(PY) -m benchmarks.cold_start
	$(PY) -m benchmarks.scale

# Load test against app.py (template composer, loopback, rate limits off): 10/50/200 users, 1 and 2 workers.
load: $(RUN_STAMP)
	$(PY) -m assistant index
	$(PY) -m benchmarks.load

# Where a loaded server's time goes (py-spy, from the dev extra): benchmarks/results/profile.md.
profile: $(DEV_STAMP)
	$(PY) -m assistant index
	$(PY) -m benchmarks.profile_load

clean:
	rm -rf $(VENV) data
