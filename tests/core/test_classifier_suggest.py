"""What to label next: the least certain objects first, never one already labelled."""
import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.classes import make_classes
from napari_dlmicro.core.models.classifier.prediction import Prediction
from napari_dlmicro.core.models.classifier.uncertainty import suggest, uncertainty

P = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0], [0.34, 0.33, 0.33], [1.0, 0.0, 0.0]])


def test_margin_and_entropy_order_objects_by_doubt():
    margin = uncertainty(P, "margin")
    entropy = uncertainty(P, "entropy")
    assert margin.argmax() in (2, 3) and margin.argmin() == 4
    assert entropy.argmax() == 3 and entropy[4] == pytest.approx(0.0)
    assert ((entropy >= 0) & (entropy <= 1 + 1e-12)).all()


def test_suggest_skips_labelled_objects():
    ids = np.array([10, 11, 12, 13, 14])
    assert list(suggest(ids, P, 2, method="entropy")) == [13, 11]
    assert list(suggest(ids, P, 2, exclude=[13], method="entropy")) == [11, 12]
    pred = Prediction(ids, P, make_classes(["a", "b", "c"]))
    assert list(pred.suggest(10, exclude=ids[:4])) == [14]


def test_unknown_measure_is_refused():
    with pytest.raises(UserError, match="uncertainty measure"):
        uncertainty(P, "variance")
