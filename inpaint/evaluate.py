"""One evaluator for every model (protocol.md section 4): the fixed test pairs of every hole-ratio bin,
streamed in batches, scored on the composite at the working resolution."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from inpaint import bins, metrics, weights
from inpaint.config import EvaluateConfig
from inpaint.data.pairs import TestPairs
from inpaint.frameworks.base import composite, masked_input
from inpaint.models.registry import build, count_parameters

PER_IMAGE = ("l1", "psnr", "ssim")


def load_generator(model_path: Path) -> tuple[torch.nn.Module, dict]:
    from inpaint.train import load_state

    state = load_state(model_path)
    if "generator" not in state:
        raise ValueError(f"{model_path}: holds no generator weights (not written by the train stage?)")
    meta = state["meta"]
    gen = build(meta["generator"], image_size=meta["image_size"])
    gen.load_state_dict(state["generator"])
    return gen.eval(), meta


def read_pairs(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the pairs stage writes the test pairs (`dvc repro pairs`)")
    pairs = pd.read_csv(path)
    missing = {"bin", "image", "mask"} - set(pairs.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} missing (expected bin, image, mask)")
    return pairs


class SetMetrics:
    """FID and LPIPS as the `weights` setting allows; records why either is not computed."""

    def __init__(self, cfg: EvaluateConfig, mode: str):
        self.status: dict[str, str] = {}
        self.fid = self._build("fid", "fid_inception", mode, lambda path: metrics.InceptionFeatures(cfg.fid_dims, path))
        self.lpips = self._build("lpips", weights.lpips_backbone(cfg.lpips_net), mode,
                                 lambda path: metrics.LPIPSDistance(cfg.lpips_net, pretrained_backbone=path is not None))

    def _build(self, name: str, key: str, mode: str, make):
        """The metric's network from the weight file `key`, random weights in `random` mode, or None (and a
        loud warning) when the file is missing in `auto` mode."""
        path = weights.resolve(key, mode)
        if path is None and mode != "random":
            self.status[name] = "not computed: " + weights.missing_message(weights.FILES[key])
            print(f"WARNING {name} {self.status[name]}")
            return None
        self.status[name] = "pretrained" if path else "random weights (uncalibrated)"
        return make(path)

    @property
    def pretrained(self) -> bool:
        """False when any computed metric used random weights."""
        return not any(s.startswith("random") for s in self.status.values())


@torch.no_grad()
def evaluate(generator: torch.nn.Module, images: np.ndarray, masks, pairs: pd.DataFrame, cfg: EvaluateConfig,
             set_metrics: SetMetrics) -> tuple[dict[str, float], pd.DataFrame]:
    """Metrics per bin (`{metric}/{bin key}`) and the per-image table."""
    results, rows = {}, []
    for b in range(len(bins.BINS)):
        sel = pairs[pairs.bin == b][["image", "mask"]].to_numpy()
        if cfg.pairs_per_bin:
            sel = sel[: cfg.pairs_per_bin]
        if len(sel) == 0:
            raise ValueError(f"no test pairs for bin {bins.label(b)}")
        loader = torch.utils.data.DataLoader(TestPairs(images, masks, sel), batch_size=cfg.batch_size)
        real_feats, fake_feats, lpips_vals = [], [], []
        for image, mask in tqdm(loader, desc=f"evaluate {bins.label(b)}", unit="batch", leave=False):
            out = generator(masked_input(image, mask), mask)["output"]
            comp_u8, gt_u8 = metrics.to_uint8(composite(out, image, mask)), metrics.to_uint8(image)
            comp = torch.from_numpy(comp_u8).permute(0, 3, 1, 2).float() / 255  # what is scored is the uint8 image
            for a, g in zip(comp_u8, gt_u8):
                rows.append({"bin": b, "l1": metrics.l1_percent(a, g), "psnr": metrics.psnr(a, g),
                             "ssim": metrics.ssim(a, g, cfg.ssim_window)})
            if set_metrics.lpips:
                lpips_vals.append(set_metrics.lpips(comp, image))
            if set_metrics.fid:
                real_feats.append(set_metrics.fid(image))
                fake_feats.append(set_metrics.fid(comp))
        key = bins.key(b)
        table = pd.DataFrame([r for r in rows if r["bin"] == b])
        for m in PER_IMAGE:
            results[f"{m}/{key}"] = float(table[m].mean())
        if lpips_vals:
            values = np.concatenate(lpips_vals)
            results[f"lpips/{key}"] = float(values.mean())
            for r, v in zip(rows[-len(values):], values):
                r["lpips"] = float(v)
        if fake_feats:
            mu1, s1 = metrics.feature_stats(np.concatenate(real_feats))
            mu2, s2 = metrics.feature_stats(np.concatenate(fake_feats))
            results[f"fid/{key}"] = metrics.frechet_distance(mu1, s1, mu2, s2)
    return results, pd.DataFrame(rows)


@torch.no_grad()
def inference_ms(generator: torch.nn.Module, image_size: int, repeats: int = 5) -> float:
    """Mean wall time of one forward pass on one image on the current device (CPU here)."""
    x, m = torch.rand(1, 3, image_size, image_size), torch.zeros(1, 1, image_size, image_size)
    generator(x, m)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        generator(x, m)
    return (time.perf_counter() - start) / repeats * 1000


def complexity(generator: torch.nn.Module, image_size: int) -> dict[str, float]:
    return {"params_m": count_parameters(generator) / 1e6, "infer_ms_cpu": inference_ms(generator, image_size)}
