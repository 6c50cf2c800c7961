"""Objects across block seams: each object is owned by one block, drawn by it whole, and numbered once.

The scheme (why it is exact is in :mod:`napari_dlmicro.core.blockwise`'s notes):

1. A block segments its core plus a halo. Every object it finds has a seed
   (StarDist: its star centre; other models: the pixel deepest inside it).
   The block *owns* the objects whose seeds lie in its core. Cores partition
   the image, so every seed has exactly one owner: no duplicates, no losses.
2. The owner draws its objects whole, from its own view: their pixels in its
   core go into the core (:class:`OwnedObjects.core`, local ids 1..n); their
   pixels that reach into a neighbour's core are kept as a *spill* (sparse
   coordinates and ids). An owned object that reaches the edge of the read
   region was cut by the halo: the block is redone with a larger halo.
3. Once every block is done, ids become global: block ``b``'s local id ``i``
   is ``offset[b] + i`` with offsets the running sum of owned counts in plan
   order, so ids are 1..N whatever order the workers finished in.
4. Each core is then composed (:func:`compose_core`): its own pixels plus the
   spills of its neighbours, and where two objects claim one pixel the higher
   score wins, as in a whole-image StarDist rendering (higher probability is
   painted last). No object is merged with another: ids come from seeds, never
   from touching or overlapping at a seam.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_dlmicro.core.blockwise.plan import Block
from napari_dlmicro.core.models.base import ObjectLabels

RAW_SHIFT = 32  # raw (provisional) ids: (block number + 1) << 32 | local id


@dataclass
class OwnedObjects:
    """What one block contributes: its core's pixels, its spills, and per-object facts."""

    core: np.ndarray  # local ids (uint32) over the block's core, 0 elsewhere
    spill_coords: np.ndarray  # (K, ndim) int32 spatial coordinates in the whole image
    spill_ids: np.ndarray  # (K,) uint32 local ids
    scores: np.ndarray  # (n,) float32, score of local id i + 1
    seeds: np.ndarray  # (n, ndim) int64 seeds in image coordinates
    local_view: np.ndarray = field(repr=False, default=None)  # local ids over the read region (for measuring)
    cut: int = 0  # owned objects that reach the edge of the read region inside the image

    @property
    def count(self) -> int:
        return len(self.scores)


def own_objects(found: ObjectLabels, block: Block, image_shape: tuple[int, ...]) -> OwnedObjects:
    """Keep the objects of ``found`` (labels over ``block.read``) whose seeds lie in the block's core."""
    labels = np.asarray(found.labels)
    origin = np.array([s.start for s in block.read])
    seeds = np.asarray(found.seeds, np.int64).reshape(-1, labels.ndim) + origin
    lo = np.array([s.start for s in block.core])
    hi = np.array([s.stop for s in block.core])
    mine = np.all((seeds >= lo) & (seeds < hi), axis=1) if len(seeds) else np.zeros(0, bool)
    ids = np.asarray(found.ids, np.int64)[mine]
    seeds = seeds[mine]
    scores = np.asarray(found.scores, np.float32)[mine]
    order = np.lexsort(seeds.T[::-1]) if len(seeds) else np.zeros(0, int)  # raster order of the seeds
    ids, seeds, scores = ids[order], seeds[order], scores[order]
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.uint32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.uint32)
    local = lut[labels]
    inner = block.core_in_read
    core = local[inner].copy()
    outside = local.copy()
    outside[inner] = 0
    where = np.nonzero(outside)
    spill_coords = (np.stack(where, axis=1) + origin).astype(np.int32) if len(where[0]) else np.zeros(
        (0, labels.ndim), np.int32)
    spill_ids = outside[where].astype(np.uint32)
    return OwnedObjects(core, spill_coords, spill_ids, scores, seeds, local, _cut(local, block, image_shape))


def _cut(local: np.ndarray, block: Block, image_shape: tuple[int, ...]) -> int:
    """Owned objects touching a face of the read region that is not the image's edge."""
    touching: set[int] = set()
    for axis, (r, n) in enumerate(zip(block.read, image_shape)):
        for at_edge, index in ((r.start > 0, 0), (r.stop < n, -1)):
            if at_edge:
                face = np.take(local, index, axis=axis)
                touching.update(np.unique(face[face > 0]).tolist())
    return len(touching)


def raw_ids(local: np.ndarray, block_number: int) -> np.ndarray:
    """Provisional ids, unique over the whole run before the offsets are known (uint64)."""
    out = local.astype(np.uint64)
    out[local > 0] += np.uint64(block_number + 1) << np.uint64(RAW_SHIFT)
    return out


def local_of(raw: np.ndarray) -> np.ndarray:
    """The local ids back from provisional ones."""
    return (np.asarray(raw, np.uint64) & np.uint64((1 << RAW_SHIFT) - 1)).astype(np.uint32)


@dataclass
class Spill:
    """A neighbour's spilled pixels, with what is needed to number and rank them."""

    offset: int
    coords: np.ndarray
    ids: np.ndarray
    scores: np.ndarray


def compose_core(local_core: np.ndarray, core: tuple[slice, ...], offset: int, scores: np.ndarray,
                 spills: list[Spill]) -> tuple[np.ndarray, int]:
    """The final ids over one core: its own objects and the neighbours' spills; also the conflicts met.

    A conflict is a pixel claimed by two objects from different blocks. With
    a halo as large as the model needs, both blocks see the same objects there
    and none arise; any that do are settled by score, then by the lower id.
    """
    local_core = np.asarray(local_core, np.uint32)
    out = np.where(local_core > 0, local_core.astype(np.uint64) + np.uint64(offset), 0).astype(np.uint64)
    rank = np.full(local_core.shape, -np.inf, np.float32)
    own = local_core > 0
    rank[own] = scores[local_core[own].astype(np.int64) - 1]
    lo = np.array([s.start for s in core])
    hi = np.array([s.stop for s in core])
    conflicts = 0
    for spill in spills:
        if not len(spill.ids):
            continue
        inside = np.all((spill.coords >= lo) & (spill.coords < hi), axis=1)
        if not inside.any():
            continue
        at = tuple((spill.coords[inside] - lo).T)
        ids = spill.ids[inside].astype(np.uint64) + np.uint64(spill.offset)
        s = spill.scores[spill.ids[inside].astype(np.int64) - 1]
        taken = out[at]
        win = (taken == 0) | (s > rank[at]) | ((s == rank[at]) & (ids < taken))
        conflicts += int(np.count_nonzero((taken != 0) & (taken != ids)))
        idx = tuple(a[win] for a in at)
        out[idx] = ids[win]
        rank[idx] = s[win]
    return out, conflicts
