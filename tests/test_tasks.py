import numpy as np
import pytest
import torch
from scipy.ndimage import label

from npf.tasks import HOLE_SHARES, ContextSampler, draw_holes


def test_training_fractions_within_bounds_and_uniform() -> None:
    valid = torch.ones(2000, 1, 10, 10, dtype=torch.bool)
    counts = ContextSampler(0.0, 0.3)(valid, torch.Generator().manual_seed(0)).sum((1, 2, 3))
    assert counts.min() >= 1 and counts.max() <= 30
    assert set(counts.unique().tolist()) == set(range(1, 31))  # every count occurs
    assert abs(counts.float().mean().item() - 15) < 1.0


def test_fixed_fraction_is_exact() -> None:
    valid = torch.ones(4, 1, 16, 16, dtype=torch.bool)
    counts = ContextSampler.fixed(1 / 8)(valid, torch.Generator().manual_seed(0)).sum((1, 2, 3))
    assert counts.tolist() == [32] * 4


def test_seeded_and_repeatable() -> None:
    valid = torch.ones(8, 1, 12, 12, dtype=torch.bool)
    sampler = ContextSampler()
    a = sampler(valid, torch.Generator().manual_seed(3))
    b = sampler(valid, torch.Generator().manual_seed(3))
    c = sampler(valid, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_nodata_never_context() -> None:
    valid = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(1)) < 0.5
    context = ContextSampler(0.5, 1.0)(valid, torch.Generator().manual_seed(0))
    assert not (context & ~valid).any()
    # the fraction is of the valid pixels: all of them may be drawn, never more
    assert (context.sum((1, 2, 3)) <= valid.sum((1, 2, 3))).all()
    full = ContextSampler.fixed(1.0)(valid, torch.Generator().manual_seed(0))
    assert torch.equal(full, valid)


def test_training_gives_every_image_with_a_valid_pixel_context() -> None:
    valid = torch.zeros(3000, 1, 8, 8, dtype=torch.bool)
    valid[:, :, :2, :2] = True  # four valid pixels: 0.3 x 4 rounds down to no context
    valid[0] = False  # no valid pixel: no context either
    generator = torch.Generator().manual_seed(0)
    counts = ContextSampler(0.0, 0.3)(valid, generator).sum((1, 2, 3))
    assert counts[0] == 0 and (counts[1:] == 1).all()
    # a fixed fraction stays exact: evaluation refuses what leaves an image without context
    assert ContextSampler.fixed(0.01)(valid, generator).sum() == 0


@pytest.mark.parametrize(("low", "high"), [(-0.1, 0.3), (0.5, 0.2), (0.0, 1.5)])
def test_rejects_bad_bounds(low: float, high: float) -> None:
    with pytest.raises(ValueError):
        ContextSampler(low, high)


def test_rejects_non_bool_mask() -> None:
    with pytest.raises(ValueError, match="bool"):
        ContextSampler()(torch.ones(1, 1, 4, 4), torch.Generator())


def test_void_tasks_cut_blob_holes_from_the_valid_pixels() -> None:
    valid = torch.rand(400, 1, 32, 32, generator=torch.Generator().manual_seed(2)) < 0.9
    sampler = ContextSampler(0.0, 0.3, hole_tasks=0.5)
    context = sampler(valid, torch.Generator().manual_seed(0))
    assert not (context & ~valid).any()
    share = context.sum((1, 2, 3)) / valid.sum((1, 2, 3))
    void_tasks = share > 0.3  # scattered contexts never exceed 30 %
    assert 150 < void_tasks.sum() < 250
    holes = valid & ~context
    # holes cover 2-50 % of a raster (of its valid pixels here), as connected blobs
    assert ((1 - share[void_tasks]) >= 0.01).all() and ((1 - share[void_tasks]) <= 0.55).all()
    # connected blobs, not scattered pixels: about 40 px per blob in the median raster
    pixels_per_blob = [h[0].sum().item() / label(h[0].numpy())[1] for h in holes[void_tasks]]
    assert np.median(pixels_per_blob) > 15
    again = sampler(valid, torch.Generator().manual_seed(0))
    assert torch.equal(context, again)


def test_holes_follow_their_share_and_seed() -> None:
    holes = draw_holes((300, 64, 64), torch.Generator().manual_seed(1))
    share = holes.float().mean((1, 2, 3))
    assert share.min() >= HOLE_SHARES[0] - 0.01 and share.max() <= HOLE_SHARES[1] + 0.01
    assert abs(share.mean().item() - sum(HOLE_SHARES) / 2) < 0.03
    assert torch.equal(holes, draw_holes((300, 64, 64), torch.Generator().manual_seed(1)))


def test_rejects_bad_hole_settings() -> None:
    with pytest.raises(ValueError, match="hole_tasks"):
        ContextSampler(hole_tasks=1.5)
    with pytest.raises(ValueError, match="fixed fraction"):
        ContextSampler(fraction=0.1, hole_tasks=0.5)
