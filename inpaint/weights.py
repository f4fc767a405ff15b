"""Pretrained weight files (docs/protocol.md section 4): looked up in the torch cache, never downloaded here.

`weights` setting: `auto` skips what needs a missing file (loudly, recorded), `required` stops before any
work naming the file and the fix, `random` (tests only) builds the same networks with random weights and
every result records `pretrained: false`.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightFile:
    key: str
    filename: str
    url: str
    used_by: str

    @property
    def path(self) -> Path:
        import torch  # here, not at the top: the stages that need no network (prepare, masks, pairs) skip its import

        return Path(torch.hub.get_dir()) / "checkpoints" / self.filename


FILES = {f.key: f for f in (
    WeightFile("fid_inception", "pt_inception-2015-12-05-6726825d.pth",
               "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
               "FID (pytorch-fid Inception, pool3)"),
    WeightFile("alexnet", "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
               "LPIPS (alex backbone)"),
    WeightFile("vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
               "LPIPS (vgg backbone), LGNet and PConv perceptual and style losses"),
)}


class MissingWeights(FileNotFoundError):
    pass


def missing_message(f: WeightFile) -> str:
    return (f"{f.used_by} needs {f.filename}, expected at {f.path} (the torch cache, TORCH_HOME). "
            f"Download {f.url} on a machine with internet access and run `inpaint weights import DIR` "
            "with the folder that holds it.")


def resolve(key: str, mode: str) -> Path | None:
    """The local file for `key`: a Path when present; None when it must be skipped (`auto`) or replaced by
    random weights (`random`); raises MissingWeights in `required` mode."""
    if mode not in ("auto", "required", "random"):
        raise ValueError(f"evaluate.weights must be auto, required or random, got {mode!r}")
    if mode == "random":
        return None
    f = FILES[key]
    if f.path.is_file():
        return f.path
    if mode == "required":
        raise MissingWeights(missing_message(f))
    return None


def lpips_backbone(net: str) -> str:
    """The weight file behind LPIPS's backbone (`evaluate.lpips_net`)."""
    return "alexnet" if net == "alex" else "vgg16"


def needed_for_training(variant_cfg) -> list[str]:
    """What the variant's framework settings say training reads (`pretrained_files`: VGG-16 for the
    perceptual and style terms of LGNet and PConv)."""
    keys = list(variant_cfg.pretrained_files())
    unknown = [k for k in keys if k not in FILES]
    if unknown:
        raise KeyError(f"framework {variant_cfg.framework!r} needs unknown weight file(s) {unknown}; "
                       f"known: {', '.join(FILES)}")
    return keys


def needed(params) -> list[str]:
    """The weight files a configuration uses: FID's Inception, the LPIPS backbone, and what each variant's
    training reads."""
    keys = {"fid_inception", lpips_backbone(params.evaluate.lpips_net)}
    for cfg in params.variants.values():
        keys.update(needed_for_training(cfg))
    return sorted(keys)


def preflight(params) -> None:
    """In `required` mode, stop before any stage does work when a file the run will need is missing."""
    if params.weights == "required":
        missing = [missing_message(FILES[k]) for k in needed(params) if not FILES[k].path.is_file()]
        if missing:
            raise MissingWeights("weights: required, and these files are missing:\n  " + "\n  ".join(missing))


def status() -> list[dict]:
    return [{"key": f.key, "file": f.filename, "expected_at": str(f.path), "present": f.path.is_file(),
             "used_by": f.used_by} for f in FILES.values()]


def import_dir(directory: Path) -> list[Path]:
    """Copy every known weight file found in `directory` into the torch cache."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: not a directory")
    copied = []
    for f in FILES.values():
        src = directory / f.filename
        if src.is_file():
            f.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.path.with_suffix(".partial")
            shutil.copyfile(src, tmp)
            tmp.replace(f.path)
            copied.append(f.path)
    if not copied:
        names = ", ".join(f.filename for f in FILES.values())
        raise FileNotFoundError(f"{directory}: none of the known weight files ({names}) is there")
    return copied
