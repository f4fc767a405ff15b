"""`python bench/gpu.py` on a machine without CUDA: says so and exits 0, without importing the
training code it would exercise on a GPU."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: bench/gpu.py would run the check")
def test_gpu_bench_without_a_gpu_says_so_and_exits_0():
    out = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no GPU is present" in out.stdout
    assert "step ms" not in out.stdout  # nothing was measured
