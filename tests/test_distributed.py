"""A real 2-process DistributedDataParallel run on the CPU (gloo), through the entry point users call."""
import json
import os
import subprocess
import sys

import pytest

from sparsesis.models.checkpoint import STATE_FILE, read_metadata


def torchrun(run, toy_root, steps):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sparsesis.training.train", "--run-dir", str(run), "--data", str(toy_root), "--preset", "tiny",
           "--image-size", "32", "--batch-size", "4", "--steps", str(steps), "--save-every", "2",
           "--sample-every", "1000000", "--device", "cpu", "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_two_process_training_syncs_and_resumes(toy_root, tmp_path):
    run = tmp_path / "ddp"
    r = torchrun(run, toy_root, 3)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = read_metadata(run / STATE_FILE)
    record = json.loads(meta["record"])
    assert int(meta["step"]) == 3 and record["world"] == 2
    sums = record["rank_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]  # both replicas hold identical weights
    assert record["images_seen"] == 3 * 4  # the global batch, not per rank
    r = torchrun(run, toy_root, 5)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed" in r.stdout and "at step 3" in r.stdout
    meta = read_metadata(run / STATE_FILE)
    assert int(meta["step"]) == 5
    assert json.loads(meta["record"])["rank_checksums"][0] == json.loads(meta["record"])["rank_checksums"][1]
