"""PEN-Net's attention transfer (ATN): the zoo's generator against the same generator with reference ATNs.

    python bench/pennet.py                         # 256 px, batch 2, 1 thread, 5 rounds
    python bench/pennet.py --size 128 --rounds 7 --threads 2

Three sides share every weight and differ only in how each ATN computes the same maths:
- ours: `inpaint.models.pennet.ATN` as it is in this checkout;
- authors: the authors' PyTorch formulation, transcribed below: a Python loop over the batch, each sample
  matched with conv2d against its own normalised key patches and transferred with conv_transpose2d;
- unfold/bmm: the formulation the zoo used before (unfold the patches, bmm the scores, fold the transfer).
Before timing, every side's output and pyramid are checked equal to ours within --tolerance.

Inference is one no-grad forward; the training step is the generator's forward plus the backward of its L1
terms (output and pyramid), the part the ATN formulation changes (D and the optimiser are the same on every
side). The sides alternate in a rotated order for --rounds rounds after one warm-up round; each ratio is
side / reference per round, printed as median and range, for wall time and CPU time (time.process_time).
Goal: ours at <= 0.9x of the straightforward references.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpaint.models.pennet import ATN, RATE, PENNet  # noqa: E402


def _mask_at(atn: ATN, mask: Tensor, size: tuple[int, int]) -> Tensor:
    align = True if atn.mask_resize == "bilinear" else None
    return F.interpolate(mask, size=size, mode=atn.mask_resize, align_corners=align)


def _fuse(atn: ATN, y: Tensor) -> Tensor:
    return y if atn.fuse is None else torch.cat([branch(y) for branch in atn.fuse], dim=1)


class AuthorsATN(ATN):
    """The authors' AtnConv.forward: per sample, keys = the normalised ksize patches of x2 as conv filters,
    scores = conv2d(x2, keys), masked scaled softmax over the keys, then conv_transpose2d of the scores with
    x1's 4x4 raw patches (stride 2, padding 1) / 4."""

    def forward(self, x1: Tensor, x2: Tensor, mask: Tensor) -> Tensor:
        b, c1 = x1.shape[:2]
        c2, h, w = x2.shape[1:]
        k, pad = self.ksize, self.ksize // 2
        raw = F.pad(x1, (1, 1, 1, 1)).permute(0, 2, 3, 1).unfold(1, 2 * RATE, RATE).unfold(2, 2 * RATE, RATE)
        raw = raw.reshape(b, h * w, c1, 2 * RATE, 2 * RATE)
        keys = F.pad(x2, (pad,) * 4).permute(0, 2, 3, 1).unfold(1, k, 1).unfold(2, k, 1).reshape(b, h * w, c2, k, k)
        m = F.pad(_mask_at(self, mask, (h, w)), (pad,) * 4).permute(0, 2, 3, 1).unfold(1, k, 1).unfold(2, k, 1)
        valid = (m.reshape(b, h * w, -1).mean(2) == 0).to(x2.dtype).view(b, h * w, 1, 1)
        out = []
        for n in range(b):
            wi = keys[n] / keys[n].pow(2).sum((1, 2, 3), keepdim=True).sqrt().clamp_min(1e-4)
            yi = F.conv2d(x2[n:n + 1], wi, padding=pad).view(1, h * w, h, w) * valid[n:n + 1]
            yi = (F.softmax(yi * self.softmax_scale, dim=1) * valid[n:n + 1]).clamp_min(1e-8)
            out.append(F.conv_transpose2d(yi, raw[n], stride=RATE, padding=1) / 4)
        return _fuse(self, torch.cat(out))


class UnfoldBmmATN(ATN):
    """The zoo's previous formulation: scores as one bmm of unfolded patches, the transfer as bmm + fold."""

    def forward(self, x1: Tensor, x2: Tensor, mask: Tensor) -> Tensor:
        h, w = x2.shape[-2:]
        pad = self.ksize // 2
        patches = F.unfold(x2, self.ksize, padding=pad)
        keys = patches / patches.norm(dim=1, keepdim=True).clamp_min(1e-4)
        scores = torch.bmm(keys.transpose(1, 2), patches)
        valid = (F.unfold(_mask_at(self, mask, (h, w)), self.ksize, padding=pad).mean(1) == 0).to(x2.dtype)
        valid = valid.unsqueeze(2)
        attn = (F.softmax(scores * valid * self.softmax_scale, dim=1) * valid).clamp_min(1e-8)
        raw = F.unfold(x1, 2 * RATE, stride=RATE, padding=1)
        y = F.fold(torch.bmm(raw, attn), x1.shape[-2:], 2 * RATE, stride=RATE, padding=1) / 4
        return _fuse(self, y)


def with_atn(model: PENNet, cls: type[ATN]) -> PENNet:
    """A copy of `model` (same weights) whose ATNs compute with `cls`'s forward."""
    model = copy.deepcopy(model)
    for atn in model.atn:
        atn.__class__ = cls
    return model


def inputs(batch: int, size: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g)
    mask = torch.zeros(batch, 1, size, size)
    for n in range(batch):  # a different hole per sample, so per-sample code paths matter
        top, left = (torch.randint(0, size // 2, (2,), generator=g)).tolist()
        mask[n, :, top:top + size // 3, left:left + size // 2] = 1
    return image * (1 - mask) + mask, mask


def infer(model: PENNet, masked: Tensor, mask: Tensor) -> None:
    with torch.no_grad():
        model(masked, mask)


def train_step(model: PENNet, masked: Tensor, mask: Tensor) -> None:
    model.zero_grad(set_to_none=True)
    out = model(masked, mask)
    (out["output"].abs().mean() + sum(p.abs().mean() for p in out["pyramid"])).backward()


def timed(fn, *args) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def check_equal(sides: dict[str, PENNet], masked: Tensor, mask: Tensor, tolerance: float) -> None:
    with torch.no_grad():
        outs = {name: model(masked, mask) for name, model in sides.items()}
    ours = outs["ours"]
    for name, out in outs.items():
        diff = max((a - b).abs().max().item()
                   for a, b in zip([out["output"], *out["pyramid"]], [ours["output"], *ours["pyramid"]]))
        print(f"max |{name} - ours| over output and pyramid: {diff:.2e}")
        if diff > tolerance:
            raise SystemExit(f"{name} differs from ours by {diff:.2e} > --tolerance {tolerance}")


def summary(label: str, ratios: list[float]) -> str:
    ratios = sorted(ratios)
    return f"{label} {statistics.median(ratios):.3f}x ({ratios[0]:.3f}-{ratios[-1]:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tolerance", type=float, default=1e-5)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = PENNet()
    sides = {"ours": ours, "authors": with_atn(ours, AuthorsATN), "unfold/bmm": with_atn(ours, UnfoldBmmATN)}
    masked, mask = inputs(args.batch, args.size)
    print(f"PEN-Net {args.size}x{args.size}, batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds")
    check_equal(sides, masked, mask, args.tolerance)

    tasks = {"inference": infer, "train step": train_step}
    names = list(sides)
    times = {(task, name): [] for task in tasks for name in names}  # -> [(wall, cpu)] per round
    for r in range(args.rounds + 1):  # round 0 warms up and is dropped
        order = names[r % len(names):] + names[:r % len(names)]
        for task, fn in tasks.items():
            for name in order:
                t = timed(fn, sides[name], masked, mask)
                if r:
                    times[task, name].append(t)
        if r:
            print(f"round {r}: " + ", ".join(f"{task} {name} {times[task, name][-1][0]:.2f} s"
                                             for task in tasks for name in names), flush=True)

    print(f"\n{'':<12}{'side':<12}{'wall s (median, range)':>26}{'CPU s (median, range)':>26}")
    for task in tasks:
        for name in names:
            wall, cpu = (sorted(t[i] for t in times[task, name]) for i in (0, 1))
            print(f"{task:<12}{name:<12}{statistics.median(wall):>12.3f} ({wall[0]:.3f}-{wall[-1]:.3f})"
                  f"{statistics.median(cpu):>12.3f} ({cpu[0]:.3f}-{cpu[-1]:.3f})")
    print()
    for task in tasks:
        for ref in names[1:]:
            per_round = list(zip(times[task, "ours"], times[task, ref]))
            print(f"{task}: ours / {ref}: "
                  + summary("wall", [o[0] / b[0] for o, b in per_round]) + ", "
                  + summary("CPU", [o[1] / b[1] for o, b in per_round]) + "  (goal <= 0.9x)")


if __name__ == "__main__":
    main()
