"""Context blocks (non-local, global context, CGNL, SGE, CoT). Importing this package registers them."""

from videonl.models.context import cgnl, cot, global_context, non_local, sge  # noqa: F401
