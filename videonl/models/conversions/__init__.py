"""Weights of other releases (all ResNets) in the resnet3d backbone's parameter names: one module per format,
the shared helpers in `common`.

- `torchvision_resnet`: torchvision's 2D ResNets (ImageNet), inflated to 3D;
- `pytorchvideo`: PyTorchVideo's model zoo, `{"model_state": state_dict}`;
- `caffe2`: the non-local release's `.pkl` blobs, unpickled with numpy arrays only.

Each returns (state in our names, source keys no rule used). Our own checkpoint files are the engine's
(`videonl.engine.checkpoint_format`); which file MODEL.INIT names and how it loads is `videonl.engine.weight_sources`.
"""

from videonl.models.conversions.caffe2 import convert_caffe2, load_caffe2_blobs
from videonl.models.conversions.common import CheckpointError, rename_keys
from videonl.models.conversions.pytorchvideo import convert_pytorchvideo, load_pytorchvideo_checkpoint
from videonl.models.conversions.torchvision_resnet import imagenet_state_dict, inflate_2d_state_dict

__all__ = [
    "CheckpointError",
    "convert_caffe2",
    "convert_pytorchvideo",
    "imagenet_state_dict",
    "inflate_2d_state_dict",
    "load_caffe2_blobs",
    "load_pytorchvideo_checkpoint",
    "rename_keys",
]
