# `make demo` and `make test` create .venv from requirements.lock when it is missing or older than the lock.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_SOURCE := data/demo_source
DEMO_NL := output/demo/nl_i3d
DEMO_CHECKPOINT := $(DEMO_NL)/checkpoints/iter_0001500.pth

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The real path on the built-in data: raw videos and Kinetics CSVs -> prepared clips and lists -> train and
# 10-view test of a small NL I3D, then of a C2D -> the attention statistics and one picture -> the table.
demo: $(STAMP)
	$(PY) data_prep/demo.py --out-dir $(DEMO_SOURCE) --train-per-class 32 --val-per-class 8
	for split in train val; do \
		$(PY) data_prep/kinetics.py --csv $(DEMO_SOURCE)/kinetics_$$split.csv --split $$split \
			--raw-dir $(DEMO_SOURCE)/raw --out-dir data/demo --short-side 80 || exit 1; \
	done
	$(PY) train_net.py --cfg configs/demo/nl_i3d.yaml
	$(PY) train_net.py --cfg configs/demo/c2d.yaml
	$(PY) -m videonl.analyze attention --cfg configs/demo/nl_i3d.yaml --checkpoint $(DEMO_CHECKPOINT)
	$(PY) -m videonl.analyze attention-maps --cfg configs/demo/nl_i3d.yaml --checkpoint $(DEMO_CHECKPOINT) \
		--video "$$(ls "data/demo/val/moving right/"*.mp4 | head -n 1)" --random 2
	$(PY) -m videonl.compare $(DEMO_NL) output/demo/c2d

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

clean:
	rm -rf $(VENV) .pytest_cache
