"""The gradient-reversal layer (GRL) of Ganin & Lempitsky (2015), Defect-GAN §3.2 and Fig. 3.

Forward it is the identity; backward it multiplies the incoming gradient by ``-lambda``. Put between
the backbone f_theta and the source classifier f_src, it lets f_src learn to tell synthetic from
real samples while pushing f_theta to make their features indistinguishable.
"""
from __future__ import annotations

import torch
from torch import nn


class GradientReversal(torch.autograd.Function):
    """y = x forward; dL/dx = -lambda * dL/dy backward (no gradient for lambda)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = float(coefficient)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.coefficient * grad_output, None


def grad_reverse(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(x, coefficient)


class GradientReversalLayer(nn.Module):
    """:class:`GradientReversal` as a module, with its coefficient lambda."""

    def __init__(self, coefficient: float = 1.0):
        super().__init__()
        self.coefficient = coefficient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coefficient)

    def extra_repr(self) -> str:
        return f"coefficient={self.coefficient}"


__all__ = ["GradientReversal", "grad_reverse", "GradientReversalLayer"]
