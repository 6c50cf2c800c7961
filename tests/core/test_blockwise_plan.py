"""Block plans: cores partition the image; every read holds its core and halo, and edge blocks read as much."""
from __future__ import annotations

import numpy as np

from napari_dlmicro.core.blockwise.plan import plan_blocks


def test_cores_partition_the_image_and_reads_hold_core_and_halo():
    plan = plan_blocks("YX", (1000, 700), 0, 256, (40, 40), (64, 64), align=16)
    covered = np.zeros((1000, 700), np.uint8)
    for block in plan.blocks:
        covered[block.core] += 1
        for c, r, n in zip(block.core, block.read, (1000, 700)):
            assert r.start % 16 == 0
            assert r.start <= max(0, c.start - 40) and r.stop >= min(n, c.stop + 40)
            assert r.start >= 0 and r.stop <= n
    assert (covered == 1).all()


def test_edge_and_corner_blocks_read_as_much_as_inner_ones():
    plan = plan_blocks("YX", (1024, 1024), 0, 256, (64, 64), (256, 256), align=16)
    shapes = {tuple(r.stop - r.start for r in b.read) for b in plan.blocks}
    assert shapes == {(384, 384)}
    corner = plan.blocks[0]
    assert corner.read == (slice(0, 384), slice(0, 384)) and corner.core_in_read == (slice(0, 256),) * 2


def test_an_image_smaller_than_a_full_read_is_read_whole():
    plan = plan_blocks("ZYX", (20, 300, 300), 0, 256, (8, 64, 64), (20, 256, 256), align=(1, 16, 16))
    for block in plan.blocks:
        assert block.read[0] == slice(0, 20)
        assert all(r.stop - r.start <= n for r, n in zip(block.read, (20, 300, 300)))
