"""LGNet's self-attention module (docs/authors_code.md 2.6), batched with `bmm` instead of the authors'
per-sample loop.

Every spatial position is both a query and a key (1x1 patches, no mask: holes are keys too). Keys are the
feature vectors plus 1e-7, L2-normalised; queries are not normalised, so the softmax runs at a
query-dependent temperature, as in the authors' code. Scores are summed over each query's 3x3 neighbourhood
("propagation", zero padded), softmaxed over the keys at temperature 1, and the output is the weighted sum of
the *normalised* keys (norm <= 1: feature amplitude is lost, as in the original). The result is concatenated
with the input and fused back to C channels by a 1x1 conv with bias; no residual, no learned gain.

Memory: the score tensor is B x HW x HW (4096^2 per sample for a 64^2 map, i.e. 64 MB in float32).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, channels: int, propagate_size: int = 3) -> None:
        super().__init__()
        self.propagate_size = propagate_size
        self.fuse = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        queries = x.flatten(2)  # B x C x N
        keys = queries + 1e-7
        keys = keys / keys.norm(dim=1, keepdim=True)
        scores = torch.bmm(keys.transpose(1, 2), queries).view(b, h * w, h, w)  # keys as channels, queries as pixels
        k = self.propagate_size
        # avg-pool x k^2 with zero padding = sum of each key's scores over the query's k x k neighbourhood
        scores = F.avg_pool2d(scores, k, stride=1, padding=k // 2, count_include_pad=True) * (k * k)
        weights = scores.softmax(dim=1).flatten(2)  # B x N_keys x N_queries
        attended = torch.bmm(keys, weights).view(b, c, h, w)
        return self.fuse(torch.cat([attended, x], dim=1))
