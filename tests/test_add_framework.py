"""A framework is declared once (inpaint/variants/registry.py) and everything else follows: a toy framework
written as ONE module outside the package (docs/add_a_framework.md) validates in params, builds, trains a
step, and shows in weights and tables; the package's own registrations are found without a list."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from inpaint.paths import REPO_ROOT
from inpaint.provenance import codegraph
from inpaint.variants import registry
from inpaint.variants.base import VariantBase

TOY = '''
"""A toy framework: a one-layer generator trained on a weighted L1 over the whole image."""
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from inpaint.frameworks.base import Framework, Losses, masked_input
from inpaint.models.registry import register
from inpaint.variants.base import Optimiser, VariantBase
from inpaint.variants.registry import register_framework


class ToySettings(VariantBase):
    framework: Literal["toy"]
    generator: str = "toy_generator"
    l1_weight: Annotated[float, Field(gt=0)] = 1.0
    optimiser: Optimiser = Optimiser(lr_g=1e-2)

    def pretrained_files(self):
        return ("vgg16",)  # as a framework with a VGG-16 loss term declares it


class ToyGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x, mask):
        return {"output": torch.sigmoid(self.conv(torch.cat([x, mask], 1)))}


@register("toy_generator", role="generator")
def toy_generator(image_size: int = 64) -> nn.Module:
    return ToyGenerator()


class ToyFramework(Framework):
    def step(self, image, mask):
        opt = self.optimisers["generator"]
        opt.zero_grad(set_to_none=True)
        logged = Losses(self.share)
        for image, mask in self.micro_batches(image, mask):
            out = self.networks["generator"](masked_input(image, mask), mask)["output"]
            loss = self.cfg.l1_weight * (out - image).abs().mean()
            (loss * self.share).backward()
            logged.add(loss_g=loss)
        opt.step()
        return logged.totals


register_framework(ToySettings, trainer=ToyFramework, label="Toy", tables={"gdn_table1": "GConv"})
'''

DRIVER = '''
import json

import torch

from inpaint import weights
from inpaint.config import FRAMEWORKS, ParamsError, resolve
from inpaint.frameworks import build_framework, build_networks
from inpaint.results.report import framework_rows

params = resolve({"profile": "ci", "variants": {"toy_a": {"framework": "toy", "l1_weight": 2.0}}})
cfg = params.variants["toy_a"]
try:
    resolve({"profile": "ci", "variants": {"toy_b": {"framework": "toy", "l1_weight": -1}}})
    refused = ""
except ParamsError as e:
    refused = str(e)
torch.manual_seed(0)
fw = build_framework(cfg, build_networks(cfg, 32), weights_mode="random")
fw.make_optimisers()
fw.make_schedulers(1)
before = [p.detach().clone() for p in fw.networks["generator"].parameters()]
losses = fw.step(torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float())
moved = any(not torch.equal(a, b) for a, b in zip(before, fw.networks["generator"].parameters()))
print(json.dumps({"frameworks": list(FRAMEWORKS), "settings": type(cfg).__qualname__, "l1_weight": cfg.l1_weight,
                  "refused": refused, "trainer": type(fw).__qualname__, "losses": losses, "moved": moved,
                  "weights": weights.needed_for_training(cfg), "gdn_table1": list(framework_rows("gdn_table1"))}))
'''


def test_a_framework_in_one_new_module_validates_builds_trains_and_shows_in_weights_and_tables(tmp_path):
    (tmp_path / "toy_framework.py").write_text(textwrap.dedent(TOY))
    env = {**os.environ, registry.PLUGINS_ENV: "toy_framework",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}
    done = subprocess.run([sys.executable, "-c", DRIVER], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(p.name for p in tmp_path.glob("*.py")) == ["toy_framework.py"]  # the one module written
    assert got["frameworks"][-1] == "toy" and {"weight", "det", "lgnet", "pen"} <= set(got["frameworks"])
    assert got["settings"] == "ToySettings" and got["l1_weight"] == 2.0
    assert "variants.toy_b.l1_weight" in got["refused"]  # the toy's own schema checks its keys
    assert got["trainer"] == "ToyFramework"
    assert got["losses"]["loss_g"] > 0 and got["moved"]  # a training step ran and moved the generator
    assert got["weights"] == ["vgg16"]
    assert got["gdn_table1"] == ["pconv", "pen", "gconv", "toy", "det"]  # beside GConv's published row


def test_the_package_registrations_are_its_variants_modules_and_their_trainers_run_only_in_training():
    """Every module of inpaint/variants but the shared ones registers a framework (importing the package
    finds them, no list to extend), and the static graph behind dvc.yaml's deps sees each trainer in the
    train stage and no trainer in a stage that does not train."""
    regs = registry.registrations()
    modules = {r.settings.__module__ for r in regs}
    files = {f"inpaint.variants.{p.stem}" for p in (REPO_ROOT / "inpaint" / "variants").glob("*.py")}
    assert modules == files - {"inpaint.variants.__init__", "inpaint.variants.base", "inpaint.variants.registry"}
    trainers = {r.trainer.partition(":")[0] for r in regs if isinstance(r.trainer, str)}
    assert trainers and trainers <= codegraph.stage_modules("train")
    assert not trainers & codegraph.stage_modules("prepare")
    assert modules <= codegraph.stage_modules("prepare")  # params validation reads every registration
    for r in regs:
        if isinstance(r.trainer, str):
            assert r.trainer_class().__module__ == r.trainer.partition(":")[0], r.name


def test_every_registered_table_row_is_a_table_and_row_of_the_report():
    from inpaint.results.report import PUBLISHED_ORDER, SPECS

    for r in registry.registrations():
        for table, row in r.tables.items():
            assert table in PUBLISHED_ORDER and table in {s.name for s in SPECS}, (r.name, table)
            assert row is None or row in PUBLISHED_ORDER[table], (r.name, table, row)


class _Nameless(VariantBase):
    pass


def test_a_wrong_registration_is_refused_naming_it(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    with pytest.raises(registry.RegistrationError, match=r"_Nameless: .*framework: Literal"):
        registry.register_framework(_Nameless, trainer="inpaint.frameworks.gdn:WeightFramework")
    taken = registry.registration("weight").settings
    with pytest.raises(registry.RegistrationError, match="'weight' is registered twice"):
        registry.register_framework(taken, trainer="inpaint.frameworks.gdn:WeightFramework")
    with pytest.raises(registry.RegistrationError, match="module:Class"):
        registry.register_framework(taken, trainer="inpaint.frameworks.gdn.WeightFramework")


def test_a_missing_framework_module_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_framework_module")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with pytest.raises(registry.RegistrationError, match="INPAINT_FRAMEWORKS: cannot import framework module "
                                                          "'no_such_framework_module'"):
        registry.registrations()
