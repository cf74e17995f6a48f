# Two commands set everything up: `make run` and `make test` (README).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: run test bench lint typecheck chromium clean starter-weights

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision come from this machine's disk through pip's find-links (never uv/poetry).
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m boneage.launcher

# Debian's chromium for the browser tests; never a downloaded browser.
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null)

# Lint and type checks first: they take seconds and fail fast.
test: $(STAMP) chromium lint typecheck
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	BONEAGE_PROFILE=test BONEAGE_VAR_DIR=$(CURDIR)/var/test \
	$(PY) -m pytest -m "not bench" $(PYTEST_ARGS)

bench: $(STAMP) chromium
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	BONEAGE_PROFILE=test BONEAGE_VAR_DIR=$(CURDIR)/var/test \
	$(PY) -m pytest -m bench tests/bench -s $(PYTEST_ARGS)

# Rebuilds ml/weights/starter-light.pt, the starter weights `make run` fine-tunes (ml/weights/README.md).
starter-weights: $(STAMP)
	$(PY) -m ml.phantoms --n 600 --seed 4242 --distractors random --size 512 --out var/starter/phantoms
	$(PY) -m ml.train --data var/starter/phantoms --out var/starter/stage1.pt --preset light \
		--config ml/weights/starter-train.json
	$(PY) -m ml.phantoms --n 900 --seed 31337 --distractors random --size 512 --out var/starter/phantoms-b
	$(PY) -m ml.starter merge var/starter/train-1500 var/starter/phantoms var/starter/phantoms-b
	$(PY) -m ml.train --data var/starter/train-1500 --out ml/weights/starter-light.pt --preset light \
		--init var/starter/stage1.pt --config ml/weights/starter-finetune-train.json
	$(PY) -m ml.phantoms --n 200 --seed 55555 --distractors random --size 512 --out var/starter/heldout
	$(PY) -m ml.starter score ml/weights/starter-light.pt var/starter/heldout

lint: $(STAMP)
	$(VENV)/bin/ruff check platform ml tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy ml platform/boneage

clean:
	rm -rf var/test test-artifacts
