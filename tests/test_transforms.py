import numpy as np
import pytest
import torch
from PIL import Image

from dphpe_core.transforms import (FLIP_PERM, apply_affine, blur, crop_affine, invert_affine, swap_left_right,
                                   to_display, to_model_input, warp_image)


def test_centred_full_width_crop_is_the_identity():
    m = crop_affine([(96 - 1) / 2, (128 - 1) / 2], 96, (128, 96))
    assert np.allclose(m, [[1, 0, 0], [0, 1, 0]])


def test_invert_affine_round_trip():
    m = crop_affine([300, 200], 150, (256, 192), rotation_deg=25, flip=True)
    pts = np.random.default_rng(0).uniform(0, 500, (20, 2))
    assert np.allclose(apply_affine(apply_affine(pts, m), invert_affine(m)), pts)


@pytest.mark.parametrize("rot, flip, width", [(0, False, 120), (30, False, 90), (-45, True, 150), (0, True, 60)])
def test_image_and_keypoints_move_together(rot, flip, width):
    # a bright blob at a known source point must land where apply_affine sends the point
    src = np.zeros((240, 320, 3), np.uint8)
    yy, xx = np.mgrid[0:240, 0:320]
    p = np.array([171.0, 103.0])
    src[(xx - p[0]) ** 2 + (yy - p[1]) ** 2 <= 16] = 255
    m = crop_affine([160, 120], width, (128, 96), rotation_deg=rot, flip=flip)
    out = np.asarray(warp_image(Image.fromarray(src), m, (128, 96)))[..., 0].astype(float)
    oy, ox = np.mgrid[0:128, 0:96]
    centroid = np.array([(out * ox).sum(), (out * oy).sum()]) / out.sum()
    assert np.linalg.norm(centroid - apply_affine(p, m)) < 0.35


def test_rotation_turns_content_counter_clockwise():
    m = crop_affine([0, 0], 1.0, (1, 1), rotation_deg=90)  # scale 1, centre at (0, 0)
    # a point to the right of the centre goes up (smaller y) in the crop
    assert np.allclose(apply_affine([1, 0], m), [0, -1])


def test_flip_swaps_left_and_right():
    assert sorted(FLIP_PERM.tolist()) == list(range(16))
    assert FLIP_PERM[0] == 5 and FLIP_PERM[12] == 13 and FLIP_PERM[9] == 9
    a = np.arange(32).reshape(16, 2)
    assert np.array_equal(swap_left_right(swap_left_right(a)), a)
    assert np.array_equal(swap_left_right(np.arange(16))[[0, 5, 6]], [5, 0, 6])


def test_model_input_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (20, 12, 3), dtype=np.uint8)
    x = to_model_input(img)
    assert x.shape == (3, 20, 12) and x.dtype == torch.float32
    assert np.allclose(to_display(x) * 255, img, atol=1e-3)


def test_blur_keeps_constants_and_commutes_with_normalisation():
    img = torch.rand(2, 3, 32, 24)
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(3, 1, 1), torch.tensor([0.2, 0.3, 0.25]).view(3, 1, 1)
    a = blur((img - mean) / std, kernel=7, sigma=2.0)
    b = (blur(img, kernel=7, sigma=2.0) - mean) / std
    assert torch.allclose(a, b, atol=1e-5)
    const = torch.full((3, 16, 16), 0.3)
    assert torch.allclose(blur(const, kernel=9, sigma=3.0), const)
    assert blur(img, kernel=7, sigma=2.0).std() < img.std()


@pytest.mark.parametrize("kernel,sigma,shape", [(7, 2.5, (4, 3, 64, 48)), (25, 10.0, (2, 3, 256, 192)),
                                                 (3, 0.75, (3, 17, 11)), (1, 1.0, (1, 3, 8, 8))])
def test_blur_is_torchvisions_gaussian_blur(kernel, sigma, shape):
    """The two 1-D passes give torchvision's 2-D Gaussian blur (the same kernel and border)."""
    from torchvision.transforms.v2 import functional as TF
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(kernel))
    ours = blur(x, kernel=kernel, sigma=sigma)
    ref = TF.gaussian_blur(x, kernel_size=[kernel, kernel], sigma=[sigma, sigma])
    assert ours.shape == x.shape and torch.allclose(ours, ref, atol=2e-6, rtol=0), (ours - ref).abs().max()
    wide = blur(x.double(), kernel=kernel, sigma=sigma)
    assert wide.dtype == torch.float64 and torch.allclose(wide, TF.gaussian_blur(x.double(), [kernel, kernel], [sigma, sigma]),
                                                          atol=1e-12, rtol=0)


def test_blur_refuses_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        blur(torch.zeros(3, 8, 8), kernel=4, sigma=1.0)
    with pytest.raises(ValueError, match="too large for a 8 x 6 image"):
        blur(torch.zeros(3, 8, 6), kernel=13, sigma=1.0)


def test_crop_width_must_be_positive():
    with pytest.raises(ValueError, match="crop width"):
        crop_affine([0, 0], 0, (8, 8))
