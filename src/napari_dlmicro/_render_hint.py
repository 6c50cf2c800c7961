"""A hint, once per session, for images read chunk by chunk: napari's asynchronous rendering keeps pans smooth.

With napari's default synchronous slicing, the chunks a pan or zoom brings
into view are read and decoded on the GUI thread before the frame is drawn:
measured on a 50,000² OME-Zarr slide (2 cores, software OpenGL), the worst
camera step held napari 67-71 ms, about 10 ms a 512² chunk. napari's
"Render Layers Asynchronously" (Preferences › Experimental, or
``NAPARI_ASYNC=1``) reads them on a helper thread: 26-37 ms. It is the
user's setting, so the reader suggests it instead of changing it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BIG_PLANE = 8192 * 8192  # level 0 planes above this are read chunk by chunk as the user pans
_SHOWN: list[bool] = []

HINT = ("{name} is read chunk by chunk as you pan and zoom. For smooth pans, let napari read those chunks off "
        "the screen's thread: Preferences › Experimental › Render Layers Asynchronously (or start napari with "
        "NAPARI_ASYNC=1).")


def _async_rendering_on() -> bool:
    try:
        from napari.settings import get_settings
    except ImportError:  # headless: nothing renders
        return True
    return bool(get_settings().experimental.async_)


def hint_async_rendering(name: str, shape: Sequence[int], axes: str) -> bool:
    """Suggest napari's asynchronous rendering for an image (``axes``: a letter per axis) with a big YX plane.

    Shown at most once per session, and never where it is on already. Returns whether it was shown.
    """
    plane = int(np.prod([n for n, a in zip(shape, axes.upper()) if a in "YX"]))
    if _SHOWN or plane <= BIG_PLANE or _async_rendering_on():
        return False
    from napari.utils.notifications import show_info

    _SHOWN.append(True)
    show_info(HINT.format(name=name))
    return True
