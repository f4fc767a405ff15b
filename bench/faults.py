"""Disk left by a `dvc repro` of the active profile, estimated per variant from the networks' sizes (no
training): what each store holds after the run, and the peak while a variant trains.

    python bench/faults.py          # params.yaml's profile (smoke by default)

After a run, per variant: model.pt once (runs/, the run's folder and DVC's cache share the file,
.dvc/config); MLflow keeps a pointer only (docs/faults.md). While a variant trains: its
Ray checkpoints (every network plus Adam's two moments per optimised weight), at most `checkpoints.KEEP`
of an earlier attempt and Ray's own `num_to_keep` of this one, plus the worker's temporary copy of one.
In-process (`train.num_workers: 0`) a run keeps two in all and writes the next beside them, so the peak
printed is an upper bound there.
Compare with `du -sh` of the repository after a real run.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inpaint import checkpoints  # noqa: E402
from inpaint.config import load_params  # noqa: E402
from inpaint.frameworks import build_networks  # noqa: E402
from inpaint.paths import REPO_ROOT  # noqa: E402

MB = 2**20
ADAM_MOMENTS = 2
RAY_KEEPS = 2  # CheckpointConfig(num_to_keep=2) in inpaint/training/train.py


def _bytes(network) -> int:
    return sum(t.numel() * t.element_size() for t in network.state_dict().values())


def main() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    steps, every = params.train.steps, params.train.checkpoint_every
    per_attempt = min(RAY_KEEPS, -(-steps // every))
    print(f"profile {params.profile}: {params.data.image_size} px, {steps} steps, a checkpoint every {every}")
    print(f"{'variant':<18}{'model.pt MB':>12}{'checkpoint MB':>15}{'after MB':>10}{'peak MB':>9}")
    after_total = peak = 0.0
    for name, cfg in params.variants.items():
        nets = build_networks(cfg, params.data.image_size)
        model = sum(_bytes(nets[r]) for r in ("generator", "detector") if r in nets)
        checkpoint = sum(_bytes(n) * (1 + ADAM_MOMENTS) for n in nets.values())
        after = model  # runs/ = the run's model.pt = DVC's cache: one file
        during = (checkpoints.KEEP + per_attempt + 1) * checkpoint
        after_total += after
        peak = max(peak, after_total - after + during)
        print(f"{name:<18}{model / MB:>12.1f}{checkpoint / MB:>15.1f}{after / MB:>10.1f}{during / MB:>9.1f}")
        del nets
    print(f"\nafter the run, trained models: {after_total / MB / 1024:.2f} GB; peak while the last variant trains "
          f"(worst case, a resumed attempt): {peak / MB / 1024:.2f} GB (plus data/, mlflow.db, reports: "
          "see du -sh)")


if __name__ == "__main__":
    main()
