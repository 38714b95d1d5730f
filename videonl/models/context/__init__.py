"""Context blocks (non-local, global context, CGNL, SGE, CoT). Importing this package registers them."""

from . import non_local  # noqa: F401
