"""The napari internals this plugin uses, in one place, each with a fall-back to napari's public API.

Checked with napari 0.9.2 (:data:`CHECKED_WITH`). Where an internal is missing or
behaves differently (another napari version), the public path runs instead:
slower or less precise, never wrong. ``tests/widgets/test_napari_compat.py``
runs both paths.

- :func:`redraw_labels_region`: a Labels layer's texture updated for one
  region (napari's own painting path: ``_slice``, ``_get_pt_not_disp``,
  ``colormap._data_to_texture``, ``_partial_labels_refresh``); public path:
  ``layer.refresh()``, which re-colours and re-uploads the whole slice
  (hundreds of milliseconds on a large image).
- :func:`reload_layer`: a layer re-read from its store (``_reset_thumbnail_level_data``:
  napari 0.9 keeps a 2D pyramid's coarsest level once read, and a refresh
  shows that copy again); public path: the layer's data set anew, which
  rebuilds its slicing state too.
- :func:`warm_labels_colours`: napari's numba colour mapping of uint32
  labels compiled ahead (``_accelerated_cmap._zero_preserving_modulo_loop``);
  public path: none (the first Labels layer compiles it, as without us).
- :func:`camera`: ``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before.
- :func:`view_direction`: the cursor's viewing ray for picking in 3D
  (``cursor._view_direction``); public path: None, which picks at the cursor point.
- :func:`fit_window_to_screen`: the main window's size (``window._qt_window``);
  public path: ``window.resize``, when the Qt window cannot be reached.
"""
from __future__ import annotations

import warnings

import numpy as np
from qtpy.QtWidgets import QApplication

CHECKED_WITH = ("0.9.2",)

_INTERNAL_ERRORS = (AttributeError, KeyError, TypeError, ValueError, IndexError)


def redraw_labels_region(layer, region: tuple[slice, ...]) -> bool:
    """Redraw ``layer.data[region]`` on screen; True if only that region was redrawn, False after a full refresh."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # napari flags plugins' use of its private slice API
        try:
            return _partial_redraw(layer, region)
        except _INTERNAL_ERRORS:
            layer.refresh()
            return False


def _partial_redraw(layer, region: tuple[slice, ...]) -> bool:
    displayed = list(layer._slice_input.displayed)
    not_displayed = layer._get_pt_not_disp()
    for dim, index in not_displayed.items():
        s = region[dim]
        if not (s.start or 0) <= index < s.stop:
            return True  # not in the plane on screen: nothing to redraw
    view_region = tuple(region[d] for d in displayed)
    values = np.asarray(layer.data[tuple(
        slice(not_displayed[d], not_displayed[d] + 1) if d in not_displayed else region[d]
        for d in range(layer.data.ndim)
    )]).reshape([region[d].stop - region[d].start for d in displayed])
    if layer._slice.image.view.shape != layer._slice.image.raw.shape:
        raise AttributeError("the view is downsampled: a partial update would not line up")
    layer._slice.image.view[view_region] = layer.colormap._data_to_texture(values)
    layer._accumulate_updated_slice(tuple(region))
    layer._partial_labels_refresh()
    return True


def reload_layer(layer) -> None:
    """Show what ``layer``'s arrays hold now, as read from their store (blocks written since it was drawn)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # napari flags plugins' use of its private API
            _drop_cached_level(layer)
    except _INTERNAL_ERRORS:
        layer.data = layer.data
    else:
        layer.refresh()


def _drop_cached_level(layer) -> None:
    layer._reset_thumbnail_level_data()


def warm_labels_colours() -> None:
    """Compile (or load from numba's cache) napari's colour mapping of uint32 labels; safe off the GUI thread.

    Both forms a 2D Labels layer uses: its plane, and the 1D list of the ids it shows.
    """
    try:
        from napari.utils.colormaps import _accelerated_cmap as cmap

        for shape in ((2, 2), (2,)):
            cmap._zero_preserving_modulo_loop(np.zeros(shape, np.uint32), 49, np.dtype(np.uint8), 0)
    except (ImportError, *_INTERNAL_ERRORS):
        pass


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def view_direction(viewer):
    """The direction the cursor looks along in 3D, or None where napari does not expose it."""
    try:
        return viewer.cursor._view_direction
    except AttributeError:
        return None


def fit_window_to_screen(viewer, fraction: float = 0.92, largest: tuple[int, int] = (1680, 1050)) -> tuple[int, int]:
    """Size napari's main window to ``fraction`` of the screen it is on (at most ``largest``); returns the size."""
    screen = QApplication.primaryScreen()
    geometry = screen.availableGeometry() if screen is not None else None
    width, height = largest if geometry is None else (geometry.width(), geometry.height())
    size = (min(largest[0], int(width * fraction)), min(largest[1], int(height * fraction)))
    qt_window = getattr(viewer.window, "_qt_window", None)
    if qt_window is not None:
        qt_window.resize(*size)
        if geometry is not None:
            qt_window.move(geometry.x() + (width - size[0]) // 2, geometry.y() + (height - size[1]) // 2)
    else:
        viewer.window.resize(*size)
    return size
