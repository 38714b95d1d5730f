"""videonl: video action recognition with non-local and global-context blocks."""

__version__ = "0.1.0"
