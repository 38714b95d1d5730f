"""Training and evaluation: what train_net.py runs."""
