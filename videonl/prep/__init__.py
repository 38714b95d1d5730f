"""Dataset preparation: downloaded datasets -> trimmed, resized clips and the list files videonl reads.

Each module is a command (`python -m videonl.prep.kinetics --help`; from a checkout also
`python data_prep/kinetics.py`).
"""
