# Two commands set everything up: `make run` and `make test` (README).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: run stop test bench lint typecheck chromium orthanc clean starter-weights

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision come from this machine's disk through pip's find-links (never uv/poetry).
	# pip warns once per package about find-links/index locations this machine does not have: nothing to act on.
	bash -o pipefail -c "$(PY) -m pip install -q -e '.[dev]' 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }"
	touch $(STAMP)

# Web and worker logs go to var/log/; Ctrl-C or `make stop` (from another terminal) stops everything it started.
run: $(STAMP)
	$(PY) -m boneage.launcher

stop:
	@$(PY) -m boneage.launcher stop

# Debian's chromium for the browser tests (never a downloaded browser) and docker-compose for the compose check.
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/docker-compose || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium fonts-dejavu-core docker-compose >/dev/null)

orthanc:  # the PACS the DICOMweb tests talk to
	@test -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null)

# Lint and type checks first: they take seconds and fail fast.
test: $(STAMP) chromium orthanc lint typecheck
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

# ruff, then the layering of docs/architecture.md (import-linter contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check platform ml tests
	PYTHONPATH=platform:. $(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy ml platform/boneage

clean:
	rm -rf var/test test-artifacts
