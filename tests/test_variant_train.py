"""Per-variant train settings: train < framework_train < the variant's own train, validated with a clear error."""
import pytest

from inpaint.config import ParamsError, resolve
from inpaint.training.train import loop_config

VARIANTS = {"lg": {"framework": "lgnet", "generator": "lgnet_c"}, "pen": {"framework": "pen"},
            "det": {"framework": "det"}, "small": {"framework": "lgnet", "train": {"batch_size": 2, "steps": 3}}}


def test_the_paper_profile_trains_each_family_with_its_authors_batch_size():
    p = resolve({"profile": "paper", "data": {"folder": "/data"}, "variants": VARIANTS})
    assert p.train_for("lg").batch_size == 4 and p.train_for("lg").steps == 1_350_000
    assert p.train_for("pen").batch_size == 16 and p.train_for("pen").steps == 330_000
    assert p.train_for("det").batch_size == 8 and p.train_for("det").steps == 337_500
    assert (p.train_for("small").batch_size, p.train_for("small").steps) == (2, 3)  # the variant wins
    # and the authors' learning rates are the frameworks' optimiser defaults
    assert p.variants["lg"].optimiser.lr_g == 2e-4 and p.variants["pen"].optimiser.lr_g == 1e-4
    assert (p.variants["det"].optimiser.lr_g, p.variants["det"].optimiser.lr_d) == (1e-4, 1e-5)


def test_the_training_driver_uses_the_merged_settings():
    p = resolve({"profile": "smoke", "variants": VARIANTS})
    assert loop_config(p, "small", None, "h")["train"]["batch_size"] == 2
    assert loop_config(p, "pen", None, "h")["train"]["batch_size"] == p.train.batch_size


@pytest.mark.parametrize("variant, message", [
    ({"framework": "pen", "train": {"batch_size": 0}}, "variants.bad.train"),
    ({"framework": "pen", "train": {"batchsize": 4}}, "batchsize: Extra inputs"),
    ({"framework": "pen", "train": {"batch_size": 3, "num_workers": 2}}, "divisible"),
])
def test_bad_variant_train_settings_name_the_variant(variant, message):
    with pytest.raises(ParamsError, match=message):
        resolve({"profile": "smoke", "variants": {"bad": variant}})


def test_framework_train_names_known_frameworks():
    with pytest.raises(ParamsError, match="unknown framework.*'lgnett'"):
        resolve({"profile": "smoke", "framework_train": {"lgnett": {"batch_size": 4}}, "variants": VARIANTS})
