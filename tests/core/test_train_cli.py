"""``napari-dlmicro train stardist`` and ``napari-dlmicro evaluate`` end to end on files."""
import json

import numpy as np
import tifffile

from napari_dlmicro.cli import main


def test_train_stardist_then_evaluate(nuclei, tmp_path, capsys):
    img, gt = nuclei
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    for k, (ys, xs) in enumerate([(slice(0, 128), slice(0, 256)), (slice(128, 256), slice(0, 256))]):
        tifffile.imwrite(tmp_path / "img" / f"n{k}.tif", img[ys, xs])
        tifffile.imwrite(tmp_path / "gt" / f"n{k}_masks.tif", gt[ys, xs].astype(np.uint16))
    out = tmp_path / "model"
    rc = main(["train", "stardist", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "gt"),
               "-o", str(out), "--epochs", "1", "--patch", "64", "--val-fraction", "0.5", "--device", "cpu"])
    assert rc == 0 and (out / "config.json").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "stardist" and cfg["history"] and cfg["data"]["pairs"] == ["n0", "n1"]
    assert "saved stardist model" in capsys.readouterr().out

    rc = main(["evaluate", str(tmp_path / "gt"), str(tmp_path / "gt"), "--iou", "0.5", "0.9", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["n_files"] == 2 and report["pooled"][0]["f1"] == 1.0
    assert [r["iou"] for r in report["pooled"]] == [0.5, 0.9]


def test_cli_bad_input_exits_with_a_reason(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    tifffile.imwrite(tmp_path / "img" / "a.tif", np.zeros((64, 64), np.uint8))
    tifffile.imwrite(tmp_path / "gt" / "a.tif", np.zeros((64, 64), np.uint16))
    rc = main(["train", "stardist", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "gt"),
               "-o", str(tmp_path / "m"), "--epochs", "1"])
    assert rc == 2 and "empty" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    rc = main(["evaluate", str(tmp_path / "gt" / "a.tif"), str(tmp_path / "img" / "a.tif"), "--iou", "2"])
    assert rc == 2 and "between 0 and 1" in capsys.readouterr().err


def test_train_semantic_then_segment_with_it(nuclei, tmp_path, capsys):
    img, gt = nuclei
    (tmp_path / "img").mkdir()
    (tmp_path / "cls").mkdir()
    for k in range(2):
        tifffile.imwrite(tmp_path / "img" / f"n{k}.tif", img[k * 128:(k + 1) * 128, :128])
        tifffile.imwrite(tmp_path / "cls" / f"n{k}.tif", (gt[k * 128:(k + 1) * 128, :128] > 0).astype(np.uint8))
    out = tmp_path / "sem"
    rc = main(["train", "semantic", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "cls"),
               "-o", str(out), "--epochs", "1", "--patch", "64", "--val-fraction", "0.5", "--device", "cpu"])
    assert rc == 0 and json.loads((out / "config.json").read_text())["kind"] == "semantic"
    assert "saved semantic model" in capsys.readouterr().out
    rc = main(["segment", str(tmp_path / "img" / "n0.tif"), "--model", str(out), "-o", str(tmp_path / "seg")])
    labels = tifffile.imread(tmp_path / "seg" / "n0_labels.tif")
    assert rc == 0 and labels.shape == (128, 128) and set(np.unique(labels)) <= {0, 1}
