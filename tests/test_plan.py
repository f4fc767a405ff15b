"""`inpaint plan` (inpaint/training/plan.py): the schedule of trainings on a cluster, and the command's table; and the
pieces of inpaint/training/together.py that need no cluster."""
import os
import subprocess
import sys

import pytest
import yaml

from inpaint.config import resolve
from inpaint.paths import REPO_ROOT
from inpaint.training import plan, together


def _item(name: str, amount: float, hours: float, kind: str = "GPU") -> plan.Item:
    return plan.Item(name, "weight", kind, amount, steps=3600, step_s=hours, source="given")


def test_the_schedule_starts_each_training_when_its_request_fits_a_later_smaller_one_first():
    items = [_item("a", 1, 10), _item("b", 1, 5), _item("c", 2, 1), _item("d", 1, 2)]
    makespan = plan.schedule(items, {"GPU": 2})
    # a and b at once; when b ends (5 h) one GPU is free: c (2 GPUs) waits, d fits; c when a ends (10 h)
    assert {i.variant: i.start_h for i in items} == {"a": 0, "b": 0, "d": 5, "c": 10}
    assert makespan == 11


def test_a_training_larger_than_the_cluster_is_refused_by_name():
    with pytest.raises(ValueError, match="c asks for 4 GPU; the cluster has 2"):
        plan.schedule([_item("a", 1, 1), _item("c", 4, 1)], {"GPU": 2})


def test_the_table_puts_the_makespan_beside_the_sequential_sum():
    params = resolve({"profile": "ci", "variants": {"a": {"framework": "weight"}}})
    items = [_item("a", 1, 3), _item("b", 1, 3)]
    text = plan.table(params, items, plan.schedule(items, {"GPU": 2, "CPU": 0}), {"GPU": 2, "CPU": 0}, "as given")
    assert "on 2 GPU (as given)" in text
    assert "makespan 3.0 h together; 6.0 h one after another (0.50x)" in text


def test_the_plan_command_calibrates_each_variant_on_this_device(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw.update(profile="ci", variants={"pconv": raw["variants"]["pconv"]}, tune={"studies": {}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "profiles").symlink_to(REPO_ROOT / "profiles")
    (tmp_path / "dvc.yaml").touch()
    env = {**os.environ, "INPAINT_ROOT": str(tmp_path)}  # no data prepared there, no MLflow store: calibration
    out = subprocess.run([sys.executable, "-m", "inpaint.cli", "plan", "--cpus", "1", "--calibration-steps", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = [line.split() for line in out.stdout.splitlines() if line.startswith("pconv")]
    assert row[-3:] == ["calibrated", "on", "cpu"] and float(row[5]) > 0  # seconds per step, measured
    assert "(1.00x)" in out.stdout  # one CPU: one training at a time
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml", "profiles"]  # nothing written


def test_without_a_cluster_the_plan_command_says_what_it_needs():
    out = subprocess.run([sys.executable, "-m", "inpaint.cli", "plan"], capture_output=True, text=True, timeout=600,
                         env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert out.returncode == 2
    assert out.stderr.strip() == "error: inpaint plan: give the cluster as --gpus N and/or --cpus M, or set RAY_ADDRESS"


def test_a_failed_trainings_error_is_its_last_line_that_says_what_went_wrong():
    error = RuntimeError("Training failed due to worker errors:\n[Rank 0 Error Snippet]:\nTraceback (most recent "
                         "call last):\n  File \"inpaint/training/train.py\", line 200, in train_loop\n"
                         "    raise ValueError(x)\n"
                         "ValueError: train.batch_size=512 is larger than the training set (80 images)\n")
    assert together.one_line(error) == "ValueError: train.batch_size=512 is larger than the training set (80 images)"


def test_only_variants_on_ray_workers_that_resume_train_together():
    params = resolve({"profile": "ci", "train": {"num_workers": 1}, "variants": {
        "a": {"framework": "weight"}, "local": {"framework": "weight", "train": {"num_workers": 0}},
        "fresh": {"framework": "weight", "train": {"resume": "never"}}}})
    assert together.candidates(params) == ["a"]
