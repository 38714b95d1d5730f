"""Run from a checkout: `python data_prep/charades.py --help` is `videonl prep charades --help`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's videonl, installed or not
from videonl.command import run  # noqa: E402  (imported, not run as __main__: --workers pickles its functions)
from videonl.prep.charades import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
