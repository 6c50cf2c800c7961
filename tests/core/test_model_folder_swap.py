"""A model folder being replaced by a checkpoint is read whole by a loader in the same process."""
from __future__ import annotations

import threading

from napari_dlmicro.core.models.restoration.network import build_model, load_restoration, save_restoration


def test_loading_while_a_checkpoint_replaces_the_folder_reads_one_whole_version(tmp_path):
    folder = tmp_path / "n2v_model"
    norm = {"mean": [0.0], "std": [1.0]}
    model = build_model("n2v", 2, 1, 2, 8, {"normalization": norm, "channels": "independent"})
    save_restoration(model, folder)
    done = threading.Event()

    def keep_saving() -> None:
        while not done.is_set():
            save_restoration(model, folder)

    writer = threading.Thread(target=keep_saving)
    writer.start()
    try:
        for _ in range(300):  # before the swap lock, a load in the gap between its renames found no weights
            assert load_restoration(folder).kind == "n2v"
    finally:
        done.set()
        writer.join()
