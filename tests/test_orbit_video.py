"""The orbit video's camera circles the object the documented way, and the animation advances under it.

A red splat off the centre of the world is followed through the decoded mp4: its pixel position must be where an
orbit camera (data/cameras.py: azimuth 0 looks from +Z, azimuth grows towards +X, elevation 0, the distance that
fits the object sphere) would see it, frame by frame.
"""
from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from data.cameras import fit_distance
from recon.export import write_orbit_video
from recon.gaussians import Gaussians

SIZE, FOV = 64, 40.0


def red_splat(positions: list[tuple[float, float, float]]) -> Gaussians:
    """One opaque red Gaussian per animation frame at the given world positions: Gaussians [F, 1]."""
    F = len(positions)
    return Gaussians(means=torch.tensor(positions)[:, None], rotations=torch.tensor([1.0, 0, 0, 0]).expand(F, 1, 4),
                     scales=torch.full((F, 1, 3), 0.04), opacities=torch.full((F, 1), 0.99),
                     colours=torch.tensor([1.0, 0, 0]).expand(F, 1, 3))


def red_centres(path) -> tuple[np.ndarray, np.ndarray]:
    """Per decoded video frame: the (row, column) centroid of the red pixels in pixel units [K, 2], and their count [K]."""
    video = iio.imread(path).astype(int)  # [K, H, W, 3]
    red = (video[..., 0] > 150) & (video[..., 1] < 100)  # [K, H, W]
    rows, cols = np.indices(red.shape[1:]) + 0.5  # pixel centres
    count = red.sum(axis=(1, 2))
    assert (count > 0).all(), "the splat is missing from a frame"
    centres = np.stack([(red * rows).sum(axis=(1, 2)) / count, (red * cols).sum(axis=(1, 2)) / count], axis=-1)
    return centres, count


def pixels_off_centre(offset: float, depth: float) -> float:
    """How far from the image centre (pixels) a point `offset` world units beside the optical axis at `depth` lands."""
    focal = 0.5 / math.tan(math.radians(FOV) / 2) * SIZE  # pixels
    return focal * offset / depth


def test_the_camera_circles_the_object_towards_plus_x(tmp_path):
    x = 0.3  # the splat sits on the +X axis; the animation has one frame
    path = write_orbit_video(tmp_path / "orbit.mp4", red_splat([(x, 0.0, 0.0)]), size=SIZE, num_video_frames=4, fps=4,
                             elevation=0.0, fov=FOV)
    centres, count = red_centres(path)
    d, middle = fit_distance(FOV), SIZE / 2
    # Azimuth 0 (camera on +Z): +X is to the right. 90 (on +X): the splat faces the camera at the centre, near.
    # 180 (on -Z): +X is to the left. 270 (on -X): at the centre again, behind the origin, far.
    expected_columns = [middle + pixels_off_centre(x, d), middle, middle - pixels_off_centre(x, d), middle]
    np.testing.assert_allclose(centres[:, 1], expected_columns, atol=1.0)
    np.testing.assert_allclose(centres[:, 0], middle, atol=1.0)  # elevation 0: on the horizon row throughout
    assert count[1] > 1.2 * count[3]  # nearer at azimuth 90 than at 270: the camera went round, not back and forth


def test_the_animation_advances_while_the_camera_circles(tmp_path):
    y = 0.25  # animation frame 0 at the centre, frame 1 raised along +Y
    path = write_orbit_video(tmp_path / "orbit.mp4", red_splat([(0.0, 0.0, 0.0), (0.0, y, 0.0)]), size=SIZE,
                             num_video_frames=4, fps=4, elevation=0.0, fov=FOV)
    centres, _ = red_centres(path)
    raised = SIZE / 2 - pixels_off_centre(y, fit_distance(FOV))  # image rows grow downwards
    # Video frame k shows animation frame floor(k F / K): frames 0-1 the first, 2-3 the second.
    np.testing.assert_allclose(centres[:, 0], [SIZE / 2, SIZE / 2, raised, raised], atol=1.0)


def test_orbit_video_refuses_a_single_gaussian_set(tmp_path):
    with pytest.raises(ValueError, match=r"\[F, N\]"):
        write_orbit_video(tmp_path / "orbit.mp4", red_splat([(0.0, 0.0, 0.0)]).map(lambda t: t[0]))
