"""``napari-dlmicro train classifier`` and ``napari-dlmicro classify`` end to end on files."""
import json

import numpy as np
import pytest
import tifffile

from napari_dlmicro.cli import main
from napari_dlmicro.core.models.classifier.fast import FastClassifier
from napari_dlmicro.core.models.loader import kind_of, load_model


@pytest.fixture
def folders(tmp_path, make_two_kinds):
    """Two images of discs, their masks (named as segment writes them) and class tables of some objects."""
    for sub in ("img", "msk", "cls"):
        (tmp_path / sub).mkdir()
    truths = {}
    for k in range(2):
        image, labels, truth = make_two_kinds(seed=k)
        tifffile.imwrite(tmp_path / "img" / f"d{k}.tif", (image * 1000).astype(np.uint16))
        tifffile.imwrite(tmp_path / "msk" / f"d{k}_labels.tif", labels.astype(np.uint16))
        rows = "".join(f"{i},{truth[i]}\n" for i in list(truth)[:6])
        (tmp_path / "cls" / f"d{k}.csv").write_text("label,class\n" + rows)
        truths[f"d{k}"] = truth
    return tmp_path, truths


def test_train_fast_then_classify(folders, capsys):
    root, truths = folders
    (root / "cls" / "classes.json").write_text(json.dumps([{"name": "dim", "colour": "#112233"}, {"name": "bright"}]))
    rc = main(["train", "classifier", "--images", str(root / "img"), "--masks", str(root / "msk"), "--classes",
               str(root / "cls"), "-o", str(root / "model"), "--trees", "20"])
    assert rc == 0 and "saved classifier model" in capsys.readouterr().out
    config = json.loads((root / "model" / "config.json").read_text())
    assert [c["name"] for c in config["classes"]] == ["dim", "bright"] and config["classes"][0]["colour"] == "#112233"
    assert config["assessment"]["confusion"] and config["data"]["images"] == ["d0", "d1"]
    assert kind_of(root / "model") == "classifier" and isinstance(load_model(root / "model"), FastClassifier)
    rc = main(["classify", str(root / "img"), "--masks", str(root / "msk"), "-m", str(root / "model"),
               "-o", str(root / "out")])
    assert rc == 0 and "d0.tif: dim" in capsys.readouterr().out
    for stem, truth in truths.items():
        lines = (root / "out" / f"{stem}_classes.csv").read_text().splitlines()
        assert lines[0] == "label,class,probability" and len(lines) == len(truth) + 1
        rows = [line.split(",") for line in lines[1:]]
        assert all(truth[int(label)] == name for label, name, _ in rows)
        class_map = tifffile.imread(root / "out" / f"{stem}_classmap.tif")
        labels = tifffile.imread(root / "msk" / f"{stem}_labels.tif")
        assert class_map.shape == labels.shape
        for label, name, _ in rows:
            assert (class_map[labels == int(label)] == ["dim", "bright"].index(name) + 1).all()
        assert (class_map[labels == 0] == 0).all()


def test_train_deep_from_the_command_line(folders, capsys):
    root, _ = folders
    rc = main(["train", "classifier", "--images", str(root / "img"), "--masks", str(root / "msk"), "--classes",
               str(root / "cls"), "-o", str(root / "deep"), "--kind", "deep", "--epochs", "1", "--crop", "32",
               "--no-pretrained", "--device", "cpu"])
    assert rc == 0
    config = json.loads((root / "deep" / "config.json").read_text())
    assert config["classifier"] == "deep" and config["pretrained"] == "none"
    rc = main(["classify", str(root / "img" / "d1.tif"), "--masks", str(root / "msk"), "-m", str(root / "deep"),
               "-o", str(root / "out")])
    assert rc == 0 and (root / "out" / "d1_classmap.tif").is_file()


def test_bad_input_exits_with_a_reason_and_writes_nothing(folders, capsys):
    root, _ = folders
    (root / "cls" / "d1.csv").write_text("label,class\n1,bright\n4000,dim\n")
    before = (root / "cls" / "d1.csv").read_text()
    rc = main(["train", "classifier", "--images", str(root / "img"), "--masks", str(root / "msk"), "--classes",
               str(root / "cls"), "-o", str(root / "model")])
    assert rc == 2 and "label 4000 of the class table of d1 is not an object of its mask" in capsys.readouterr().err
    assert not (root / "model").exists() and (root / "cls" / "d1.csv").read_text() == before
    (root / "cls" / "d9.csv").write_text("label,class\n1,dim\n")
    rc = main(["train", "classifier", "--images", str(root / "img"), "--masks", str(root / "msk"), "--classes",
               str(root / "cls"), "-o", str(root / "model")])
    assert rc == 2 and "d9.csv have no image" in capsys.readouterr().err
    rc = main(["classify", str(root / "img"), "--masks", str(root / "cls"), "-m", str(root / "img"), "-o",
               str(root / "out")])
    assert rc == 2 and not (root / "out").exists()
