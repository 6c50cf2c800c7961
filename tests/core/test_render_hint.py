"""Opening an image read chunk by chunk suggests napari's asynchronous rendering, once, where it is off."""
from __future__ import annotations

import numpy as np
import pytest
from blockwise_helpers import write_ngff

from napari_dlmicro import _render_hint
from napari_dlmicro._zarr_reader import get_reader


@pytest.fixture()
def shown(monkeypatch):
    messages: list[str] = []
    monkeypatch.setattr(_render_hint, "_SHOWN", [])
    monkeypatch.setattr(_render_hint, "_async_rendering_on", lambda: False)
    import napari.utils.notifications

    monkeypatch.setattr(napari.utils.notifications, "show_info", messages.append)
    return messages


def test_a_big_plane_gets_the_hint_once_a_session(shown):
    big = (1, 9000, 9000)
    assert _render_hint.hint_async_rendering("slide", big, "CYX")
    assert not _render_hint.hint_async_rendering("slide 2", big, "CYX")
    assert len(shown) == 1 and "slide" in shown[0] and "NAPARI_ASYNC=1" in shown[0]


def test_small_planes_and_a_session_rendering_asynchronously_get_none(shown, monkeypatch):
    assert not _render_hint.hint_async_rendering("stack", (400, 2048, 2048, 3), "ZYXC")  # many planes, each small
    monkeypatch.setattr(_render_hint, "_async_rendering_on", lambda: True)
    assert not _render_hint.hint_async_rendering("slide", (50_000, 50_000), "YX")
    assert shown == []


def test_the_ome_zarr_reader_gives_the_hint_for_a_big_store(shown, tmp_path, monkeypatch):
    monkeypatch.setattr(_render_hint, "BIG_PLANE", 100 * 100)  # a small store standing in for a slide
    store = write_ngff(tmp_path / "slide.ome.zarr", np.zeros((128, 256), np.uint8), "yx")
    layers = get_reader(str(store))(str(store))
    assert len(layers) == 1 and len(shown) == 1
