# `make demo` and `make test` create .venv from requirements.lock when it is missing or older than the lock.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_SOURCE := data/demo_source
DEMO_NL := output/demo/nl_i3d
# The NL I3D's final weights, its newest checkpoint (the shell expands it where it is used).
DEMO_CHECKPOINT = "$$(ls $(DEMO_NL)/checkpoints/iter_*.pth | tail -n 1)"
DEMO_STARTED := output/demo/started_at
DEMO_CHARADES_SOURCE := data/demo_charades_source
DEMO_CHARADES_STARTED := output/demo_charades/started_at

.PHONY: demo demo-charades test venv clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The real path on the built-in data: raw videos and Kinetics CSVs -> prepared clips and lists -> train and
# 10-view test of a small NL I3D, then of a C2D -> the attention statistics and one picture -> the table;
# last, the whole time and this machine's fp32 matmul rate, which says how fast the machine was.
demo: $(STAMP)
	@mkdir -p output/demo && date +%s > $(DEMO_STARTED)
	$(PY) -m videonl.prep.demo --out-dir $(DEMO_SOURCE) --train-per-class 32 --val-per-class 8 --workers $$(nproc)
	for split in train val; do \
		$(PY) -m videonl.prep.kinetics --csv $(DEMO_SOURCE)/kinetics_$$split.csv --split $$split \
			--raw-dir $(DEMO_SOURCE)/raw --out-dir data/demo --short-side 80 --workers $$(nproc) || exit 1; \
	done
	$(PY) train_net.py --cfg configs/demo/nl_i3d.yaml
	$(PY) train_net.py --cfg configs/demo/c2d.yaml
	$(PY) -m videonl.analyze attention --cfg configs/demo/nl_i3d.yaml --checkpoint $(DEMO_CHECKPOINT)
	$(PY) -m videonl.analyze attention-maps --cfg configs/demo/nl_i3d.yaml --checkpoint $(DEMO_CHECKPOINT) \
		--video "$$(ls "data/demo/val/moving right/"*.mp4 | head -n 1)" --random 2
	$(PY) -m videonl.compare $(DEMO_NL) output/demo/c2d
	@seconds=$$(( $$(date +%s) - $$(cat $(DEMO_STARTED)) )); \
		printf "demo: %d min %d s wall (.venv ready); this machine's " $$((seconds / 60)) $$((seconds % 60)); \
		$(PY) -m videonl.benchmark matmul

# The multi-label path on built-in data: Charades-format annotation files and videos -> `prep charades` -> train
# and 10-view test (mAP) of a small NL I3D, then of a C2D -> the table, with the mAP of a constant predictor.
demo-charades: $(STAMP)
	@mkdir -p output/demo_charades && date +%s > $(DEMO_CHARADES_STARTED)
	$(PY) -m videonl.prep.demo_charades --out-dir $(DEMO_CHARADES_SOURCE) --workers $$(nproc)
	$(PY) -m videonl.prep.charades --annotations-dir $(DEMO_CHARADES_SOURCE) \
		--videos-dir $(DEMO_CHARADES_SOURCE)/Charades_v1_480 --out-dir data/demo_charades --short-side 80 \
		--workers $$(nproc)
	$(PY) train_net.py --cfg configs/demo_charades/nl_i3d.yaml
	$(PY) train_net.py --cfg configs/demo_charades/c2d.yaml
	$(PY) -m videonl.compare output/demo_charades/nl_i3d output/demo_charades/c2d
	@seconds=$$(( $$(date +%s) - $$(cat $(DEMO_CHARADES_STARTED)) )); \
		printf "demo-charades: %d min %d s wall (.venv ready); this machine's " $$((seconds / 60)) $$((seconds % 60)); \
		$(PY) -m videonl.benchmark matmul

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

clean:
	rm -rf $(VENV) .pytest_cache
