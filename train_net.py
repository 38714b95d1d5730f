"""Train and/or test a video model as a config says: the script form of `videonl train`, for a checkout and
for torchrun (`torchrun --nproc_per_node 8 train_net.py --cfg C`).

    python train_net.py --cfg configs/kinetics400/nl_i3d_r50_32x2.yaml [KEY VALUE ...]

`python train_net.py --help` lists the options; videonl/train.py parses them and videonl/engine/launch.py runs.
"""

import sys

from videonl.command import run
from videonl.train import main

if __name__ == "__main__":
    sys.exit(run(main))
