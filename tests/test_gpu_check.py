"""benchmarks/gpu_check.py runs on a machine without a GPU: it says so, times every trainer's step and the
distributed path (two processes over gloo), and prints images per second and the share of the peak."""
import os
import re
import subprocess
import sys

from conftest import REPO


def test_gpu_check_runs_on_the_cpu_and_says_it_found_no_gpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--scale", "smoke", "--steps", "1",
                           "--processes", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("found no GPU") and "practical peak" in out
    for trainer in ("defect_gan", "dadnet", "classifier"):
        single = re.search(rf"{trainer}: +([\d.]+) images/s, .* ([\d.]+) % of the peak", out)
        group = re.search(rf"{trainer}: +([\d.]+) images/s over 2 processes \(DDP, gloo on the CPU\)", out)
        assert single and float(single.group(1)) > 0 and float(single.group(2)) > 0, out
        assert group and float(group.group(1)) > 0, out
