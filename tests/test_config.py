"""params.yaml validation: every profile resolves; bad values stop with a message naming the key."""
import pytest
import yaml

from inpaint.config import ParamsError, load_params, resolve
from inpaint.paths import REPO_ROOT

VARIANTS = {"gdn_det": {"framework": "det"}}


@pytest.mark.parametrize("profile", ["smoke", "ci", "paper"])
def test_profiles_resolve(profile):
    raw = {"profile": profile, "variants": VARIANTS}
    if profile == "paper":
        raw["data"] = {"folder": "/some/where"}
    p = resolve(raw)
    assert p.profile == profile
    assert p.variants["gdn_det"].exp_base == 10


def test_repository_params_file_is_valid():
    p = load_params(REPO_ROOT / "params.yaml")
    assert set(p.variants) >= {"gdn_weight", "gdn_adv", "gdn_det"}


def test_override_beats_profile():
    p = resolve({"profile": "smoke", "train": {"steps": 7}, "variants": VARIANTS})
    assert p.train.steps == 7
    profile = yaml.safe_load((REPO_ROOT / "profiles" / "smoke.yaml").read_text())
    assert p.train.batch_size == profile["train"]["batch_size"]  # still from the profile


@pytest.mark.parametrize("override, key", [
    ({"variants": {"v": {"framework": "det", "optimiser": {"lr_g": -1e-4}}}}, "variants.v.optimiser.lr_g"),
    ({"variants": {"v": {"framework": "det", "exp_base": 1.0}}}, "variants.v.exp_base"),  # no union member (det) in the name
    ({"variants": {"v": {"framework": "nope"}}}, "variants.v"),
    ({"train": {"stepz": 3}}, "train.stepz"),
    ({"data": {"image_size": 100}}, "data.image_size"),
    ({"train": {"batch_size": 3, "num_workers": 2}}, "train"),
    ({"train": {"batch_size": 4, "num_workers": 2, "accumulate": 4}},
     "train.batch_size (4) must be divisible by train.num_workers (2) x train.accumulate (4)"),
])
def test_bad_values_name_the_key(override, key):
    raw = {"profile": "smoke", "variants": VARIANTS, **override}
    with pytest.raises(ParamsError) as err:
        resolve(raw)
    assert key in str(err.value)


def test_unknown_profile():
    with pytest.raises(ParamsError, match="profile: unknown profile 'gpu'"):
        resolve({"profile": "gpu", "variants": VARIANTS})


def test_paper_profile_needs_a_folder():
    with pytest.raises(ParamsError, match="data.folder"):
        resolve({"profile": "paper", "variants": VARIANTS})


def test_broken_yaml_names_the_file(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "smoke.yaml").write_text(yaml.safe_dump({}))
    bad = tmp_path / "params.yaml"
    bad.write_text("profile: smoke\nvariants: [unclosed\n")
    with pytest.raises(ParamsError, match="params.yaml: not valid YAML"):
        load_params(bad)
