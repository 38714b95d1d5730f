"""Run from a checkout: `python data_prep/kinetics.py --help` is `python -m videonl.prep.kinetics --help`."""
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's videonl, installed or not
runpy.run_module("videonl.prep.kinetics", run_name="__main__")
