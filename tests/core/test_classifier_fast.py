"""The fast classifier: learns from a few clicks, saved without pickle, loaded to the same answers, explained."""
import json

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from napari_dlmicro.core.models.classifier.classes import make_classes
from napari_dlmicro.core.models.classifier.fast import assess_fast, cross_validate, fit_fast, training_matrix
from napari_dlmicro.core.models.classifier.features import object_features
from napari_dlmicro.core.models.classifier.folder import load_classifier
from napari_dlmicro.core.models.classifier.forest import Forest

CLASSES = make_classes(["bright", "dim"])


def clicks(truth, per_class, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("bright", "dim"):
        ids = [k for k, v in truth.items() if v == name]
        out.update({int(k): name for k in rng.choice(ids, per_class, replace=False)})
    return out


def test_a_few_clicks_classify_every_object(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    features = object_features(image, labels)
    model = fit_fast(features, clicks(truth, 3), CLASSES)
    pred = model.predict_features(features)
    assert list(pred.ids) == sorted(truth)
    assert [truth[int(i)] for i in pred.ids] == list(pred.names)
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0)
    assert sum(pred.counts().values()) == len(truth)
    class_map = pred.class_map(labels)
    assert set(np.unique(class_map)) == {0, 1, 2}
    assert (class_map[labels == 1] == CLASSES.index(next(c for c in CLASSES if c.name == truth[1])) + 1).all()


def test_numpy_forest_predicts_exactly_what_scikit_learn_does():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 7)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 1)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X[:200], y[:200])
    forest = Forest.from_sklearn(model)
    np.testing.assert_array_equal(forest.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(forest.importance, model.feature_importances_)


def test_saved_fast_classifier_loads_without_pickle_to_the_same_answers(objects_two_kinds, tmp_path):
    image, labels, truth = objects_two_kinds
    features = object_features(image, labels)
    model = fit_fast(features, clicks(truth, 4), CLASSES, name="discs")
    folder = model.save(tmp_path / "discs")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "forest.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "classifier" and config["classifier"] == "fast"
    assert config["classes"] == [{"name": "bright", "colour": CLASSES[0].colour},
                                 {"name": "dim", "colour": CLASSES[1].colour}]
    assert config["features"]["names"] == list(features.names)
    loaded = load_classifier(folder)
    assert loaded.kind == "fast" and loaded.class_names == ("bright", "dim")
    np.testing.assert_array_equal(loaded.predict(image, labels).probabilities,
                                  model.predict_features(features).probabilities)


def test_explanation_adds_up_to_the_probability(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    features = object_features(image, labels)
    model = fit_fast(features, clicks(truth, 4), CLASSES)
    pred = model.predict_features(features)
    why = model.explain(features, 5)
    row = int(np.flatnonzero(pred.ids == 5)[0])
    assert why.class_name == pred.names[row]
    assert why.bias + why.contributions.sum() == pytest.approx(pred.probabilities[row].max())
    assert why.probability == pytest.approx(pred.probabilities[row].max())
    assert sum(model.importances.values()) == pytest.approx(1.0)
    top = why.top(3)
    assert len(top) == 3 and abs(top[0][1]) >= abs(top[1][1]) >= abs(top[2][1])


def test_cross_validation_holds_every_labelled_object_out_once(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    features = object_features(image, labels)
    X, y, _ = training_matrix([features], [clicks(truth, 6)], CLASSES)
    a = cross_validate(X, y, CLASSES, folds=3)
    assert a.n == 12 and a.confusion.shape == (2, 2) and a.accuracy == pytest.approx(1.0)
    assert "3-fold" in a.how
    assert cross_validate(X[[0, 6, 7]], y[[0, 6, 7]], CLASSES) is None  # one example of a class: nothing to hold out
    a = assess_fast(features, clicks(truth, 6), CLASSES, val_fraction=0.25)  # what a dock calls: 4 folds
    assert a.n == 12 and "4-fold" in a.how
