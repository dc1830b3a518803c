"""DiffAugment (Zhao et al. 2020): shapes, seeding, differentiability."""

from __future__ import annotations

import pytest
import torch

from synthmed.generators.diffaugment import diff_augment, rand_cutout, rand_translation

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # tiny nets: 1 thread is faster on a shared CPU


def _batch() -> torch.Tensor:
    return torch.rand(6, 3, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_shapes_are_kept_for_every_policy():
    x = _batch()
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        assert diff_augment(x, policy, torch.Generator().manual_seed(0)).shape == x.shape
    assert diff_augment(torch.zeros(2, 1, 32, 32), "translation,cutout").shape == (2, 1, 32, 32)


def test_same_seed_same_augmentation_and_different_seed_differs():
    x = _batch()
    a = diff_augment(x, generator=torch.Generator().manual_seed(3))
    b = diff_augment(x, generator=torch.Generator().manual_seed(3))
    c = diff_augment(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_empty_policy_is_identity():
    x = _batch()
    assert torch.equal(diff_augment(x, ""), x)


def test_gradients_flow_through_the_augmentation():
    x = _batch().requires_grad_(True)
    diff_augment(x, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cutout_zeroes_a_square_and_translation_only_moves_pixels():
    x = torch.ones(4, 1, 28, 28)
    cut = rand_cutout(x, torch.Generator().manual_seed(0))
    zeros = (cut == 0).flatten(1).sum(1)
    assert ((zeros > 0) & (zeros <= 14 * 14)).all()  # one square of side 28/2, clipped at the border
    moved = rand_translation(torch.arange(4 * 28 * 28.0).view(4, 1, 28, 28), torch.Generator().manual_seed(0))
    assert set(moved.unique().tolist()) <= set(range(4 * 28 * 28))  # values are copied, never blended
