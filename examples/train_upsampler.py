"""Train a tiny 2x upsampling network built from tconv layers (a few seconds on a CPU).

The net learns to map a low-resolution image to its high-resolution original:
``ConvTranspose2d(1, 8, 4, stride=2, padding=1)`` (a learned 2x upsampler; the output is
``(H - 1)*2 - 2 + 4 = 2H``), a ReLU, then a stride-1 ``ConvTranspose2d(8, 1, 3, padding=1)``,
which keeps the size.  Both layers are ``tconv.torch`` layers: forward runs tconv's scatter
kernel, backward its gather and weight-gradient kernels, and PyTorch's autograd and optimiser
do the rest.

Run:  python examples/train_upsampler.py [--steps 200]
"""

from __future__ import annotations

import argparse

import tconv.torch as tt
import torch


def smooth_images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random smooth images (N, 1, size, size): sums of a few random 2-D cosines."""
    coords = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    images = torch.zeros(n, 1, size, size)
    for _ in range(3):
        fy, fx, phase = torch.rand(3, n, 1, 1, generator=generator) * torch.tensor([4.0, 4.0, 6.28]).view(3, 1, 1, 1)
        images[:, 0] += torch.cos(2 * torch.pi * (fy * yy + fx * xx) + phase)
    return images / 3


def build_net() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        tt.ConvTranspose2d(1, 8, kernel_size=4, stride=2, padding=1),
        torch.nn.ReLU(),
        tt.ConvTranspose2d(8, 1, kernel_size=3, padding=1),
    )


def train(steps: int = 200, seed: int = 0, verbose: bool = True) -> list[float]:
    """Train for ``steps`` Adam steps; returns the loss after each step."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    high = smooth_images(16, 32, generator)                       # (16, 1, 32, 32) targets
    low = torch.nn.functional.avg_pool2d(high, 2)                 # (16, 1, 16, 16) inputs
    net = build_net()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for step in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(net(low), high)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if verbose and (step % max(1, steps // 10) == 0 or step == steps - 1):
            print(f"step {step:4d}   mse {losses[-1]:.5f}")
    return losses


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = train(args.steps, args.seed)
    print(f"loss {result[0]:.5f} -> {result[-1]:.5f}")
