"""Video data: decoding (`videonl.data.decode`), clip sampling, transforms, datasets and loaders."""

from videonl.data.decode import DecodeError, read_frames
from videonl.data.loader import build_dataset, build_loader, model_input, set_epoch, view_batches

__all__ = ["DecodeError", "read_frames", "build_dataset", "build_loader", "model_input", "set_epoch", "view_batches"]
