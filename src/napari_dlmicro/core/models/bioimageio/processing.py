"""The spec's pre- and postprocessing steps, on numpy arrays whose axes are named by the tensor's axis ids.

Statistics (percentiles, mean and deviation) are taken over the whole sample,
before it is cut into tiles, so that tiles see the scale the whole image has,
as the spec means "per sample". ``ensure_dtype`` to a float type keeps float32
(the networks' input); other steps follow the spec's formulas.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_dlmicro.core.errors import UserError

STATELESS = ("ensure_dtype", "scale_linear", "fixed_zero_mean_unit_variance", "sigmoid", "softmax", "binarize")


def _axes(kwargs: Any, names: Sequence[str], default_all: bool = True) -> tuple[int, ...] | None:
    axes = getattr(kwargs, "axes", None)
    if axes is None:
        return tuple(range(len(names))) if default_all else None
    return tuple(names.index(str(a)) for a in axes if str(a) in names)


def _along(values: Any, kwargs: Any, names: Sequence[str], ndim: int) -> np.ndarray:
    """``values`` (a number or one per index of ``kwargs.axis``) shaped to broadcast over the tensor."""
    values = np.asarray(values, np.float64)
    axis = getattr(kwargs, "axis", None)
    if values.ndim == 0 or axis is None:
        return values
    shape = [1] * ndim
    shape[names.index(str(axis))] = -1
    return values.reshape(shape)


def _percentile(x: np.ndarray, q: float, axes: tuple[int, ...]) -> np.ndarray:
    return np.percentile(x, q, axis=axes, keepdims=True)


def apply(steps: Sequence[Any], x: np.ndarray, names: Sequence[str], reference: np.ndarray | None = None,
          reference_names: Sequence[str] | None = None) -> np.ndarray:
    """``x`` after each of ``steps`` (the spec's processing descriptions), in order.

    ``reference`` is the unprocessed input, for steps that take their statistics
    from it (``reference_tensor``, ``scale_mean_variance``).
    """
    x = np.asarray(x)
    for step in steps:
        x = _step(step, x, list(names), reference, list(reference_names or names))
    return x


def _step(step: Any, x: np.ndarray, names: list[str], reference, reference_names) -> np.ndarray:
    op, k = str(step.id), step.kwargs
    if op == "ensure_dtype":
        dtype = np.dtype(str(k.dtype))
        return x.astype(np.float32 if dtype.kind == "f" else dtype, copy=False)
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)
    if op == "scale_linear":
        return (x * _along(k.gain, k, names, x.ndim) + _along(k.offset, k, names, x.ndim)).astype(np.float32)
    if op == "fixed_zero_mean_unit_variance":
        mean, std = _along(k.mean, k, names, x.ndim), _along(k.std, k, names, x.ndim)
        return ((x - mean) / (std + 1e-6)).astype(np.float32)
    if op == "zero_mean_unit_variance":
        axes = _axes(k, names)
        return ((x - x.mean(axis=axes, keepdims=True)) / (x.std(axis=axes, keepdims=True) + k.eps)).astype(np.float32)
    if op == "scale_range":
        source = x
        if getattr(k, "reference_tensor", None) is not None:
            if reference is None:
                raise UserError(f"a processing step refers to the tensor '{k.reference_tensor}'",
                                "use a package whose steps refer to its one input")
            source, names = reference, reference_names
        axes = _axes(k, names)
        lo, hi = _percentile(source, k.min_percentile, axes), _percentile(source, k.max_percentile, axes)
        return ((x - lo) / (hi - lo + k.eps)).astype(np.float32)
    if op == "scale_mean_variance":
        if reference is None:
            raise UserError("a processing step matches the input's statistics, but there is no input to match",
                            "use another package")
        axes, ref_axes = _axes(k, names), _axes(k, reference_names)
        ref = reference.astype(np.float64)
        out = (x - x.mean(axis=axes, keepdims=True)) / (x.std(axis=axes, keepdims=True) + k.eps)
        return (out * (ref.std(axis=ref_axes, keepdims=True) + k.eps) + ref.mean(axis=ref_axes, keepdims=True)
                ).astype(np.float32)
    if op == "clip":
        axes = _axes(k, names)
        lo = k.min if k.min is not None else (_percentile(x, k.min_percentile, axes)
                                              if getattr(k, "min_percentile", None) is not None else None)
        hi = k.max if k.max is not None else (_percentile(x, k.max_percentile, axes)
                                              if getattr(k, "max_percentile", None) is not None else None)
        return np.clip(x, lo, hi).astype(np.float32)
    if op == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    if op == "softmax":
        axis = names.index(str(k.axis))
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)
    if op == "binarize":
        return (x > _along(k.threshold, k, names, x.ndim)).astype(np.float32)
    raise UserError(f"the package asks for a '{op}' processing step, which napari-dlmicro does not run",
                    "use a package with the spec's standard steps (scale_range, zero_mean_unit_variance, ...)")


def stateless(steps: Sequence[Any]) -> bool:
    """True when every step works pixel by pixel (so it may run on each tile alone)."""
    return all(str(s.id) in STATELESS for s in steps)
