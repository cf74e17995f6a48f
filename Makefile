# Two commands set everything up: `make run` and `make test` (README).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: run stop test bench lint typecheck chromium orthanc dicomtools clean starter-weights

# Recipes are silent (@): `make run` prints what it does in sentences, never its own command lines or comments.
# torch/torchvision come from this machine's disk through pip's find-links (never uv/poetry).
# pip warns once per package about find-links/index locations this machine does not have: nothing to act on; the
# build backend's warning about editable installs (PYTHONWARNINGS=ignore) neither.
$(STAMP): pyproject.toml
	@echo "· Installing the platform into $(VENV) (a few minutes the first time)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@bash -o pipefail -c "$(PY) -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }"
	@bash -o pipefail -c "PYTHONWARNINGS=ignore $(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }"
	@touch $(STAMP)

# Web and worker logs go to var/log/; Ctrl-C or `make stop` (from another terminal) stops everything it started.
# PORT (8000) and HOST (127.0.0.1) choose where it serves: `PORT=8001 make run`.
run: $(STAMP)
	@$(PY) -m boneage.launcher

stop:
	@$(PY) -m boneage.launcher stop

# Debian's chromium for the browser tests (never a downloaded browser) and docker-compose for the compose check.
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/docker-compose || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium fonts-dejavu-core docker-compose >/dev/null)

orthanc:  # the PACS the DICOMweb tests talk to
	@test -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null)

dicomtools:  # dicom3tools' dciodvfy, the IOD checker the export tests run
	@test -x /usr/bin/dciodvfy || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools >/dev/null)

# Lint and type checks first: they take seconds and fail fast.
test: $(STAMP) chromium orthanc dicomtools lint typecheck
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	BONEAGE_PROFILE=test BONEAGE_VAR_DIR=$(CURDIR)/var/test \
	$(PY) -m pytest -m "not bench" $(PYTEST_ARGS)

bench: $(STAMP) chromium
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	BONEAGE_PROFILE=test BONEAGE_VAR_DIR=$(CURDIR)/var/test \
	$(PY) -m pytest -m bench tests/bench -s $(PYTEST_ARGS)

# Rebuilds ml/weights/starter-light.pt, the starter weights `make run` fine-tunes (ml/weights/README.md): ~75 min on
# one thread of a 2-core CPU. Phase 1 trains the regressor on crops cached once with the (frozen) segmenter of the
# previous starter (taken from git history), phase 2 trains the whole network end to end (joint loss, mask gradient).
STARTER := var/starter
starter-weights: $(STAMP)
	$(PY) -m ml.phantoms --n 3000 --seed 61001 --distractors random --size 512 --out $(STARTER)/train-61001
	$(PY) -m ml.phantoms --n 2000 --seed 61005 --distractors random --size 512 --out $(STARTER)/train-61005
	$(PY) -m ml.phantoms --n 200 --seed 55555 --distractors random --size 512 --out $(STARTER)/heldout
	$(PY) -m ml.starter merge $(STARTER)/train-5000 $(STARTER)/train-61001 $(STARTER)/train-61005
	$(PY) -m ml.starter merge $(STARTER)/e2e-1500 $(STARTER)/train-61001 --limit 1500
	git show 9cc2ee0:ml/weights/starter-light.pt > $(STARTER)/segmenter-donor.pt
	$(PY) -m ml.starter pretrain $(STARTER)/train-5000 $(STARTER)/phase1.pt --segmenter $(STARTER)/segmenter-donor.pt \
		--config ml/weights/starter-crops.json
	$(PY) -m ml.train --data $(STARTER)/e2e-1500 --out $(STARTER)/phase2.pt --init $(STARTER)/phase1.pt \
		--config ml/weights/starter-e2e-train.json --quiet
	cp $(STARTER)/phase2.pt ml/weights/starter-light.pt
	$(PY) -m ml.starter score ml/weights/starter-light.pt $(STARTER)/heldout --json $(STARTER)/heldout.json

# ruff, then the layering of docs/architecture.md (import-linter contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check platform ml tests
	PYTHONPATH=platform:. $(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy ml platform/boneage

clean:
	rm -rf var/test test-artifacts
