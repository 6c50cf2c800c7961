"""npe2 sample data: the example images that ship inside the stardist package."""
from __future__ import annotations

import warnings
from typing import Any

from stardist.data import test_image_he_2d, test_image_nuclei_2d, test_image_nuclei_3d

LayerData = tuple[Any, dict[str, Any], str]


def nuclei_2d() -> list[LayerData]:
    """DSB 2018 fluorescent nuclei (2D) and their ground-truth labels."""
    image, labels = test_image_nuclei_2d(return_mask=True)
    return [
        (image, {"name": "nuclei"}, "image"),
        (labels, {"name": "nuclei ground truth", "opacity": 0.5}, "labels"),
    ]


def nuclei_3d() -> list[LayerData]:
    """Synthetic 3D nuclei (isotropic voxels, scale 1) and their ground-truth labels."""
    image, labels = test_image_nuclei_3d(return_mask=True)
    return [
        (image, {"name": "nuclei 3D"}, "image"),
        (labels, {"name": "nuclei 3D ground truth", "opacity": 0.5}, "labels"),
    ]


def he_2d() -> list[LayerData]:
    """An H&E-stained histology image (RGB)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ImageIO v3.*")
        image = test_image_he_2d()
    return [(image, {"name": "H&E", "rgb": True}, "image")]
