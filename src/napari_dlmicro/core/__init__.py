"""The compute core: numpy, torch, stardist and cellpose. Never imports Qt or napari."""
