"""An image and its objects, checked and ready to classify: channels last, normalised, object ids listed.

Every path into a classifier (features, crops, training, prediction) starts
here, so a mismatch between image and mask is refused the same way
everywhere, and the image is normalised the same way for training and for
prediction (percentiles 1 and 99.8 per channel over the whole image, as
the segmentation job does).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from napari_dlmicro.core.data.normalize import normalized
from napari_dlmicro.core.errors import UserError

# Objects with fewer pixels have no shape to measure and nothing to crop: a clicked one is left out of training
MIN_PIXELS = 4


@dataclass
class Objects:
    """``image`` (spatial..., C) float32 normalised, ``labels`` (spatial...) and the sorted object ``ids``."""

    image: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    name: str = "the image"
    _sizes: np.ndarray | None = field(default=None, repr=False)
    _boxes: list | None = field(default=None, repr=False)

    @property
    def ndim(self) -> int:
        """2 or 3: the spatial dimensionality."""
        return self.labels.ndim

    @property
    def n_channels(self) -> int:
        """Channels of the image (1 for grey, 3 for RGB)."""
        return int(self.image.shape[-1])

    @property
    def sizes(self) -> np.ndarray:
        """Pixels of each object, in the order of ``ids``."""
        if self._sizes is None:
            counts = np.bincount(self.labels.ravel())
            self._sizes = counts[self.ids]
        return self._sizes

    def boxes(self) -> list[tuple[slice, ...]]:
        """The bounding box of each object, in the order of ``ids``."""
        if self._boxes is None:
            found = ndi.find_objects(self.labels)
            self._boxes = [found[i - 1] for i in self.ids]
        return self._boxes

    def index(self, ids) -> np.ndarray:
        """Rows of ``ids`` in ``self.ids``; ids that are not objects of the mask are a :class:`UserError`."""
        ids = np.asarray(ids, np.int64).ravel()
        rows = np.searchsorted(self.ids, ids)
        rows = np.clip(rows, 0, max(len(self.ids) - 1, 0))
        missing = ids[(len(self.ids) == 0) | (self.ids[rows] != ids)] if len(ids) else ids[:0]
        if missing.size:
            shown = ", ".join(str(int(i)) for i in missing[:5]) + (" ..." if missing.size > 5 else "")
            raise UserError(f"label {shown} is not an object of the mask of {self.name}",
                            "label objects that are in the mask (after a re-segmentation, carry the labels over)")
        return rows

    def touches_border(self) -> np.ndarray:
        """True for each object (in the order of ``ids``) with a pixel on the image border."""
        edge = np.zeros(int(self.labels.max()) + 1, bool)
        for axis in range(self.ndim):
            for end in (0, -1):
                edge[np.take(self.labels, end, axis=axis).ravel()] = True
        return edge[self.ids]

    def too_small(self) -> np.ndarray:
        """True for each object with fewer than :data:`MIN_PIXELS` pixels."""
        return self.sizes < MIN_PIXELS


def channels_last(image, labels, name: str = "the image") -> np.ndarray:
    """``image`` as (spatial..., C) for ``labels`` of shape (spatial...); channel-first images are turned."""
    image, shape = np.asarray(image), np.asarray(labels).shape
    if image.shape == shape:
        return image[..., None]
    if image.ndim == len(shape) + 1:
        if image.shape[:-1] == shape:
            return image
        if image.shape[1:] == shape:
            return np.moveaxis(image, 0, -1)
    raise UserError(f"image of shape {image.shape} and mask of shape {shape} differ ({name})",
                    "each mask must match its image pixel for pixel (channels first or last)")


def check_labels(labels, name: str = "the image") -> np.ndarray:
    """``labels`` as a 2D or 3D integer array with at least one object, or a :class:`UserError`."""
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"the mask of {name} holds {labels.dtype} values, not object ids",
                        "give a label image (0 background, one id per object)")
    if labels.ndim not in (2, 3):
        raise UserError(f"the mask of {name} is {labels.ndim}D", "classify 2D (YX) or 3D (ZYX) objects, one "
                        "time point at a time")
    if labels.size and labels.min() < 0:
        raise UserError(f"the mask of {name} has negative ids", "use 0 for background and positive ids")
    if not labels.any():
        raise UserError(f"the mask of {name} has no objects", "segment the image first")
    return labels.astype(np.int32 if int(labels.max()) < 2**31 else np.int64, copy=False)


def prepare(image, labels, name: str = "the image") -> Objects:
    """The checked, normalised image and its objects (see the module notes)."""
    labels = check_labels(labels, name)
    image = channels_last(image, labels, name)
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool) or np.iscomplexobj(image):
        raise UserError(f"{name} holds {image.dtype} data", "pick a grey-value or colour image")
    ids = np.unique(labels)
    ids = ids[ids > 0].astype(np.int64)
    return Objects(normalized(image, labels.ndim), labels, ids, name)
