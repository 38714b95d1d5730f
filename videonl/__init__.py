"""videonl: video action recognition with non-local and global-context blocks."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`videonl.Predictor` and `videonl.Prediction`, imported on first use so that `import videonl.config`
    stays light."""
    if name in ("Predictor", "Prediction"):
        from videonl import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'videonl' has no attribute '{name}'")
