"""Object removal: a trained generator fills the holes of a user's own photo, at any size.

    fill("runs/gdn_weight/model.pt", Path("photo.jpg"), Path("mask.png"), Path("result.png"))
    fill("3f2a...c9", ...)  # an MLflow run id: its model.pt (downloaded, or the one it points to on disk)

The mask is a grayscale or RGB image of exactly the photo's width and height: white (255) marks what to
remove, black (0) what to keep; nothing in between.

How a photo of any size meets a generator trained at S x S (S = the checkpoint's `image_size`):
  1. the photo is resized to S x S (bicubic, antialiased when shrinking) and the mask to S x S so that a
     cell is a hole when any of its full-resolution pixels is one (a max-pool; plain nearest-neighbour can
     drop a thin hole, which would show the generator the very object it is asked to remove);
  2. the generator runs once on [masked input, mask], as in training and evaluation;
  3. its output is resized back to the photo's size (bicubic);
  4. the composite is made at full resolution: the photo's own pixels outside the hole (bit-identical to
     the input), the upscaled output inside it.
Limits: the fill carries at most S x S worth of detail, so inside the hole of a large photo it looks soft
(a 4000 px photo with S = 256 gets one generated pixel per 16 x 16 block); a non-square photo is squeezed to
a square, so the generator sees shapes stretched; and the context the generator sees is the whole photo at
S x S, not a crop around the hole. Tiling or cropping around the hole would keep more detail; this keeps the
generator's input exactly like its training input (a whole picture at S x S).

Both files are read in their displayed orientation (EXIF orientation applied, as viewers and editors
show them); the result is written as a PNG, atomically. Everything runs on the CPU.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from inpaint import checkpoints, paths
from inpaint.data.sources import BadImage, decode
from inpaint.evaluation.evaluate import load_generator
from inpaint.frameworks.base import masked_input
from inpaint.io import atomic_path
from inpaint.provenance import tracking

RUN_ID = re.compile(r"[0-9a-f]{32}")
ARTIFACT = "checkpoint/model.pt"  # where the train stage logs model.pt (inpaint/training/train.py)


class FillError(ValueError):
    """A checkpoint, image or mask that `fill` cannot use; the message says which and why."""


def fill(checkpoint: str, image: Path, mask: Path, out: Path, tracking_uri: str | None = None) -> dict:
    """Remove what `mask` marks from `image` with a trained generator and write the result to `out` (PNG).

    `checkpoint`: a model.pt written by the train stage, or the MLflow run id of a train run (its artifact
    checkpoint/model.pt is fetched from the store at `tracking_uri`, by default `tracking.tracking_uri(None)`).
    Returns {"out", "size": [w, h], "model_size": S, "hole_ratio", "generator", "seconds"}.
    See the module docstring for how the size difference between photo and generator is handled.
    """
    start = time.perf_counter()
    image, mask, out = Path(image), Path(mask), Path(out)
    if out.suffix.lower() != ".png":
        raise FillError(f"{out}: the result is written as PNG (lossless, so the pixels outside the hole stay "
                        "identical to the photo); give a .png name")
    rgb = _read(image)
    hole = _read_mask(mask, image, rgb.shape[:2])
    generator, meta = _load(checkpoint, tracking_uri)
    size = int(meta["image_size"])

    filled = _generate(generator, rgb, hole, size)
    result = np.where(hole[..., None], filled, rgb)
    with atomic_path(out) as tmp:
        Image.fromarray(result).save(tmp, format="PNG")
    h, w = hole.shape
    return {"out": str(out), "size": [w, h], "model_size": size, "hole_ratio": float(hole.mean()),
            "generator": meta["generator"], "seconds": round(time.perf_counter() - start, 3)}


@torch.no_grad()
def _generate(generator: torch.nn.Module, rgb: np.ndarray, hole: np.ndarray, size: int) -> np.ndarray:
    """The generator's output for the whole photo, at the photo's size (uint8 H x W x 3)."""
    h, w = hole.shape
    small = Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.array(small)).permute(2, 0, 1).unsqueeze(0).float().div_(255)
    m = model_mask(hole, size)
    output = generator.cpu()(masked_input(x, m), m)["output"]
    out_u8 = output[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return np.asarray(Image.fromarray(out_u8).resize((w, h), Image.Resampling.BICUBIC))


def model_mask(hole: np.ndarray, size: int) -> torch.Tensor:
    """bool H x W -> float 1 x 1 x S x S, 1 where any full-resolution pixel of the cell is a hole."""
    full = torch.from_numpy(hole).float()[None, None]
    return F.adaptive_max_pool2d(full, (size, size))


def _read(path: Path) -> np.ndarray:
    """uint8 H x W x 3 through the prepare stage's decoder (EXIF orientation, 16-bit, transparency)."""
    if not path.is_file():
        raise FillError(f"{path}: no such file")
    try:
        return decode(path)[0]
    except BadImage as e:
        raise FillError(str(e)) from None


def _read_mask(mask: Path, image: Path, shape: tuple[int, int]) -> np.ndarray:
    """The mask as bool H x W (True = hole), checked against the photo's size."""
    gray = np.asarray(Image.fromarray(_read(mask)).convert("L"))
    if gray.shape != shape:
        (h, w), (mh, mw) = shape, gray.shape
        hint = " (width and height swapped: is one of them rotated?)" if (mh, mw) == (w, h) else ""
        raise FillError(f"mask {mask} is {mw}x{mh} but image {image} is {w}x{h}; the mask must have the "
                        f"image's exact width and height{hint}")
    other = int(np.count_nonzero((gray != 0) & (gray != 255)))
    if other:
        raise FillError(f"mask {mask}: {other} of {gray.size} pixels are neither black (0, keep) nor white "
                        "(255, fill), e.g. antialiased edges or JPEG artefacts; threshold it first, e.g. "
                        "`Image.open(p).convert('L').point(lambda v: 255 if v >= 128 else 0)`, and save as PNG")
    hole = gray == 255
    if not hole.any():
        raise FillError(f"mask {mask}: all black, nothing to fill (white, 255, marks what to remove)")
    if hole.all():
        raise FillError(f"mask {mask}: all white, nothing of the photo left to fill from (black, 0, marks "
                        "what to keep)")
    return hole


def _load(checkpoint: str, tracking_uri: str | None) -> tuple[torch.nn.Module, dict]:
    """(generator, meta) from a model.pt path or from the checkpoint artifact of an MLflow run."""
    if Path(checkpoint).is_file():
        return _generator(Path(checkpoint), checkpoint)
    if not RUN_ID.fullmatch(checkpoint):
        raise FillError(f"checkpoint {checkpoint!r}: no such file, and not an MLflow run id (32 hex characters)")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking.tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise FillError(f"checkpoint {checkpoint!r}: not a file, and there is no MLflow store at {uri} to "
                        "look it up as a run id")
    client = MlflowClient(uri)
    try:
        client.get_run(checkpoint)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise FillError(f"checkpoint {checkpoint!r}: not a file, and no MLflow run with that id in {uri}") from None
        raise FillError(f"checkpoint {checkpoint!r}: could not look the run up in {uri} ({e.message})") from None
    with tempfile.TemporaryDirectory(prefix="inpaint-fill-") as d:
        try:
            path = client.download_artifacts(checkpoint, ARTIFACT, d)
        except (MlflowException, OSError):
            return _pointed_to(client, checkpoint)
        return _generator(Path(path), f"MLflow run {checkpoint}: {ARTIFACT}")


def _pointed_to(client, run_id: str) -> tuple[torch.nn.Module, dict]:
    """The model.pt a local store's train run points to (checkpoint/model.json, inpaint/checkpoints.py),
    if that file still holds this run's model (a later training of the variant replaces it)."""
    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory(prefix="inpaint-fill-") as d:
            pointer = json.loads(Path(client.download_artifacts(run_id, checkpoints.MODEL_POINTER, d)).read_text())
    except (MlflowException, OSError, ValueError) as e:
        raise FillError(f"MLflow run {run_id}: neither {ARTIFACT} nor {checkpoints.MODEL_POINTER} (not a train run, "
                        f"or its train stage has not finished): {e}") from None
    path = paths.REPO_ROOT / pointer["path"]
    if not path.is_file():
        raise FillError(f"MLflow run {run_id}: its model {path} is missing (`dvc checkout {pointer['path']}` "
                        "restores it if that run is the current one)")
    generator, meta = _generator(path, str(path))
    if meta.get("run_id") != run_id:
        raise FillError(f"MLflow run {run_id}: {path} now holds the model of run {meta.get('run_id')}; check "
                        "out the commit of that training (`git checkout <rev> && dvc checkout`) to use it")
    return generator, meta


def _generator(path: Path, name: str) -> tuple[torch.nn.Module, dict]:
    """load_generator with its failures as one line naming the file: unreadable, not a model.pt, or
    naming a generator its weights do not fit."""
    try:
        return load_generator(path)
    except (ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FillError(f"{name}: not a usable model.pt written by the train stage ({first[:300]})") from None
