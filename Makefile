# Targets a new user runs on a fresh Debian machine with Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

INTEROP := tests/interop/node_modules/.installed
# Standard tools the chart exports must satisfy (tests/interop/test_exports.py): SCION, an SCXML
# interpreter, and mermaid-cli, which renders Mermaid with Debian's chromium.
SCION   := tests/interop/scion/node_modules/.installed
MMDC    := tests/interop/mermaid/node_modules/.installed
# The PackML nodeset the FC server loads (OPC Foundation, via npm node-opcua-nodesets; pinned, sha256-checked).
NODESET := cellctl/fc/nodesets/Opc.Ua.PackML.NodeSet2.xml

.PHONY: test run lint bench models sysdeps nodesets clean

test: $(STAMP) $(INTEROP) $(SCION) $(MMDC) $(NODESET)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

# The controller on the built-in simulated cell (real time, OPC UA / Modbus / UDP on 127.0.0.1); Ctrl-C stops it.
# Pass options through ARGS, e.g. make run ARGS="--cell pick".
run: $(STAMP) $(NODESET)
	$(BIN)/cellctl run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python bench/statecharts.py
	$(BIN)/python bench/replay.py

# The learned perception models (docs/models.md, "Training") from their fixed seeds, into models/ with a
# <model>.report.json of held-out metrics beside each. Installs the `train` extra (CPU PyTorch). One thread per
# model (the shipped models were trained so: the same seed and thread count give the same weights); the two
# segmenters train side by side, then the embedding. On 2 cores about an hour and a half: data about 20 min (cached
# under build/train-data), the segmenters about 55 min together, the embedding about 25 min.
MODEL_SEED ?= 1
TRAIN := $(BIN)/python -m perception.train
models: $(STAMP)
	$(BIN)/pip install -q -e '.[train]'
	$(BIN)/python -c "from pathlib import Path; from perception.train import dataset as d; p = Path('build/train-data'); \
	  p.mkdir(parents=True, exist_ok=True); [d.cached_split(p, s, n, 'segmentation') for s, n in (('train', 3000), ('heldout', 300))]"
	$(TRAIN).train_seg --kind segmenter --seed $(MODEL_SEED) --threads 1 --out models/segmenter.onnx & seg=$$!; \
	  $(TRAIN).train_seg --kind pick --seed $(MODEL_SEED) --threads 1 --out models/pick.onnx || exit 1; wait $$seg
	$(TRAIN).train_embedding --seed $(MODEL_SEED) --threads 1 --out models/embedding.onnx

sysdeps:
	@sh scripts/ensure-sysdeps.sh

$(STAMP): pyproject.toml scripts/ensure-sysdeps.sh
	@sh scripts/ensure-sysdeps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Independent protocol clients for the interop tests (mbpoll, node-opcua).
$(INTEROP): tests/interop/package.json tests/interop/package-lock.json scripts/ensure-sysdeps.sh
	@sh scripts/ensure-sysdeps.sh --test
	cd tests/interop && npm ci --silent --no-audit --no-fund
	touch $(INTEROP)

$(SCION): tests/interop/scion/package.json tests/interop/scion/package-lock.json scripts/ensure-sysdeps.sh
	@sh scripts/ensure-sysdeps.sh --test
	cd tests/interop/scion && npm ci --silent --no-audit --no-fund
	touch $(SCION)

# No browser download (also .puppeteerrc.cjs): mmdc drives Debian's chromium.
$(MMDC): tests/interop/mermaid/package.json tests/interop/mermaid/package-lock.json scripts/ensure-sysdeps.sh
	@sh scripts/ensure-sysdeps.sh --test
	cd tests/interop/mermaid && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --silent --no-audit --no-fund
	touch $(MMDC)

nodesets: $(NODESET)

$(NODESET): scripts/fetch-nodesets.sh scripts/ensure-sysdeps.sh
	@sh scripts/ensure-sysdeps.sh --nodesets
	@sh scripts/fetch-nodesets.sh
	@touch $@

clean:
	rm -rf $(VENV) tests/interop/node_modules tests/interop/scion/node_modules tests/interop/mermaid/node_modules \
		cellctl/fc/nodesets .pytest_cache .ruff_cache .hypothesis build *.egg-info
