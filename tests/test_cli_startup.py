"""What a command imports before it starts: `make demo` runs eight of them, and each pays its imports."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torchvision", "torch._dynamo")  # torchvision's import pulls in torch._dynamo: about a second


def test_the_demos_commands_import_neither_torchvision_nor_dynamo():
    commands = ("videonl.prep.demo", "videonl.prep.kinetics", "videonl.train", "videonl.analyze", "videonl.compare")
    code = f"import sys, {', '.join(commands)}; print(*[m for m in {HEAVY} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == ""
