"""The learning check: a GDN and an LGNet variant, trained briefly by the train stage's own loop on sample
crops, must keep lowering the error in the hole on held-out images, and their output in the hole must not
depend on what the hole held. The guard against silent training bugs (data range, mask polarity, optimiser
wiring) that the overfit-one-batch check (tests/test_learning.py) cannot see, since a model that memorises
one batch through a leak or in the wrong range still fits it.

The held-out images (the test split: whole photographs no training crop comes from) and their masks are
read here from the prepared arrays and the mask store, not through the loader, and the error is measured on
[0, 1] images with the hole's pixels replaced by noise before the generator's input is made: whatever the
training code does with the mask or the value range, the truth in the hole cannot help the score. The same
pairs with the truth left in the hole must score the same: a generator input that shows the hole (a mask
polarity flipped where the input is made) differs there.
"""
import numpy as np
import pytest
import torch
from pydantic import TypeAdapter

from inpaint.config import DataConfig, TrainConfig, Variant
from inpaint.data.prepare import load_split, prepare
from inpaint.frameworks import build_networks
from inpaint.frameworks.base import masked_input
from inpaint.masks import MaskStore, build_mask_sets
from inpaint.masks.settings import MaskSettings
from inpaint.training.train import train_loop

SIZE, CHECKS = 64, 3  # the held-out error is measured untrained and every steps / CHECKS steps
# variant: (settings, steps). LGNet's coarse network moves more slowly from its untrained output than GDN's
# generator, so it gets more steps, at a constant learning rate (its recipe decays it over the second half
# of train.steps, which in a run this short stops it learning; the check is about learning, not the schedule).
VARIANTS = {"gdn_weight": ({"framework": "weight"}, 30),
            "lgnet_c": ({"framework": "lgnet", "generator": "lgnet_c", "constant_fraction": 1.0}, 60)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning_check")
    prepare(DataConfig(dataset="sample", image_size=SIZE, crops_per_photo=8, test_photos=2), root / "prepared")
    build_mask_sets(MaskSettings(train_per_bin=32, test_per_bin=8, workers=1), SIZE, root / "masks")
    return root


class HeldOut:
    """The held-out pairs: every test crop with a test mask (1 = hole), its hole filled with seeded noise."""

    def __init__(self, root):
        images = np.asarray(load_split(root / "prepared", "test"))
        store = MaskStore(root / "masks" / "test")
        masks = np.stack([store[k % len(store)] for k in range(len(images))])
        self.truth = torch.from_numpy(images).permute(0, 3, 1, 2).double().div(255).float()
        self.mask = torch.from_numpy(masks).unsqueeze(1).float()
        noise = torch.rand(self.truth.shape, generator=torch.Generator().manual_seed(0))
        self.noised = self.truth * (1 - self.mask) + noise * self.mask

    @torch.no_grad()
    def hole_l1(self, generator: torch.nn.Module, hole_holds_truth: bool = False) -> float:
        """Mean |output - truth| over the hole pixels of every held-out pair; the hole holds noise (or, for the
        leak check, the truth) before the generator's input is made."""
        image = self.truth if hole_holds_truth else self.noised
        out = generator(masked_input(image, self.mask), self.mask)["output"]
        return float(((out - self.truth).abs() * self.mask).sum() / (3 * self.mask.sum()))


class CheckSession:
    """The loop's session (as train.LocalSession), measuring the held-out error at every checkpoint."""

    rank, world, device = 0, 1, torch.device("cpu")

    def __init__(self, held_out: HeldOut):
        self.held_out, self.errors, self.with_truth = held_out, {}, {}

    def prepare(self, network):
        return network

    def restore(self, meta, on_disk=()):
        return None

    def report(self, metrics, framework=None, step=0, meta=None):
        if framework is not None:
            framework.train(False)
            self.errors[step] = self.held_out.hole_l1(framework.networks["generator"])
            self.with_truth[step] = self.held_out.hole_l1(framework.networks["generator"], hole_holds_truth=True)
            framework.train(True)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_held_out_error_in_the_hole_keeps_falling(data, variant):
    settings, steps = VARIANTS[variant]
    tcfg = TrainConfig(steps=steps, batch_size=4, num_workers=0, seed=10, log_every=steps, image_every=steps,
                       checkpoint_every=steps // CHECKS, torch_threads=1)  # as CI's test processes
    held_out = HeldOut(data)
    torch.manual_seed(tcfg.seed)  # the loop's seed and build: the weights it starts from
    untrained = build_networks(TypeAdapter(Variant).validate_python(settings), SIZE)["generator"].eval()
    session = CheckSession(held_out)
    session.errors[0] = held_out.hole_l1(untrained)
    config = {"variant": variant, "variant_cfg": settings, "train": tcfg.model_dump(mode="json"), "image_size": SIZE,
              "prepared": str(data / "prepared"), "masks": str(data / "masks" / "train"), "tracking_uri": None,
              "run_id": None, "fingerprint": "learning-check", "weights": "auto"}
    train_loop(config, session)
    errors = list(session.errors.values())
    print(variant, "held-out hole l1 by step:", {s: round(e, 4) for s, e in session.errors.items()},
          "with the truth in the hole:", {s: round(e, 4) for s, e in session.with_truth.items()})
    assert list(session.errors) == [steps // CHECKS * k for k in range(CHECKS + 1)]
    assert session.with_truth[steps] == pytest.approx(errors[-1], abs=1e-6), "the generator sees the hole's content"
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), session.errors
    assert errors[-1] < 0.9 * errors[0], session.errors
