"""Complexity in LGNet Table IV's own convention reproduces its published FLOPs (models/summary.py)."""
import pytest
import torch
from torch import nn

from inpaint.models.registry import registered
from inpaint.models.summary import measure, table_iv_macs


@pytest.mark.parametrize("name", ["lgnet", "lgnet_light", "lgnet_share"])
def test_table_iv_count_matches_the_published_lgnet_figures(name):
    info = registered()[name]
    assert round(measure(name, 256)["gmacs_table_iv"], 2) == info.paper_gflops


def test_table_iv_count_rules():
    """Conv: output elements x (in / groups x k^2 + bias); a stride-2 transposed conv hence 4x its real
    multiply-adds; BatchNorm 2 per element; activations and functional calls nothing."""
    conv, tconv = nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 4, 2, padding=1, bias=False)
    net = nn.Sequential(conv, nn.BatchNorm2d(8), nn.ReLU(), tconv)
    x = torch.rand(1, 3, 16, 16)
    real_tconv = 16 * 16 * 8 * 4 * 16  # input positions x in x out x k^2
    assert table_iv_macs(net, (x,)) == 16 * 16 * 8 * (3 * 9 + 1) + 2 * 8 * 16 * 16 + 4 * real_tconv


def test_pennet_table_iv_count_is_not_the_published_one():
    """The attention of PEN-Net is functional: Table IV's count sees only its convolutions (4.81 G), far
    from the published 48.07 G; our full count (every matmul, x 2) is 51.32 G."""
    m = measure("pennet", 256)
    assert round(m["gmacs_table_iv"], 2) == 4.81 and round(m["gflops"], 2) == 51.32
