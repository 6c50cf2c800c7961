"""Live line plots drawn with QPainter: loss curves, validation scores, scores against IoU.

Matplotlib's Agg canvas re-rasterises the whole figure on every update, which
costs 50-150 ms of the GUI thread on a 2-core machine whose cores are busy
training. Painting a few hundred points with QPainter costs about a millisecond,
so the viewer stays responsive while a job updates the curves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


@dataclass(frozen=True)
class Panel:
    """One set of axes: which series it draws, their legend labels, and its y scale."""

    series: tuple[str, ...]
    labels: tuple[str, ...] = ()
    log_y: bool = False
    y_range: tuple[float, float] | None = None  # fixed range; None follows the data
    markers: bool = False


def nice_ticks(lo: float, hi: float, target: int = 4) -> list[float]:
    """Round tick values (1, 2, 5 times a power of ten) covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Decades (and 2x, 5x within them when fewer than three decades show) in ``[lo, hi]``."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1,) if b - a > 2 else (1, 2, 5)
    return [m * 10.0**e for e in range(a, b + 1) for m in mults if lo <= m * 10.0**e <= hi]


def _label(v: float) -> str:
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.0e}"


class LinePlot(QWidget):
    """Named series against a shared x, in one or more stacked panels, repainted on each update."""

    def __init__(self, panels: tuple[Panel, ...], xlabel: str = "step", parent: QWidget | None = None,
                 min_height: int = 150) -> None:
        super().__init__(parent)
        self.panels = panels
        self.xlabel = xlabel
        self.x: list[float] = []
        self.y: dict[str, list[float]] = {n: [] for p in panels for n in p.series}
        self.setMinimumHeight(min_height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def clear(self) -> None:
        """Forget all points."""
        self.x = []
        self.y = {n: [] for n in self.y}
        self.update()

    def add(self, x: float, values: dict[str, float | None]) -> None:
        """Append one point to every series (a missing or non-finite value leaves a gap)."""
        self.x.append(float(x))
        for n in self.y:
            v = values.get(n)
            self.y[n].append(float(v) if v is not None and math.isfinite(v) else math.nan)
        self.update()

    def set_curves(self, x: list[float], curves: dict[str, list[float]]) -> None:
        """Replace every point (e.g. scores against IoU threshold)."""
        self.x = [float(v) for v in x]
        self.y = {n: [float(v) for v in curves.get(n, [math.nan] * len(x))] for n in self.y}
        self.update()

    # -- painting -----------------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.75))
        painter.setFont(font)
        fm = painter.fontMetrics()
        left, right, top, bottom = fm.horizontalAdvance("0.000") + 10, 8, 6, fm.height() * 2 + 6
        gap = fm.height() + 4
        h = (self.height() - top - bottom - gap * (len(self.panels) - 1)) / max(len(self.panels), 1)
        xs = [v for v in self.x if math.isfinite(v)]
        x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
        if x_hi <= x_lo:
            x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
        for i, panel in enumerate(self.panels):
            box = QRectF(left, top + i * (h + gap), self.width() - left - right, h)
            self._paint_panel(painter, box, panel, x_lo, x_hi, show_x=i == len(self.panels) - 1)
        painter.setPen(QColor("black"))
        painter.drawText(QRectF(left, self.height() - fm.height() - 2, self.width() - left - right, fm.height()),
                         Qt.AlignmentFlag.AlignCenter, self.xlabel)
        painter.end()

    def _y_limits(self, panel: Panel) -> tuple[float, float]:
        if panel.y_range is not None:
            return panel.y_range
        vals = [v for n in panel.series for v in self.y[n]
                if math.isfinite(v) and (v > 0 or not panel.log_y)]
        if not vals:
            return (0.1, 10.0) if panel.log_y else (0.0, 1.0)
        lo, hi = min(vals), max(vals)
        if panel.log_y:
            lo, hi = lo / 1.15, hi * 1.15
            return (lo, hi) if hi > lo else (lo / 2, hi * 2)
        pad = (hi - lo) * 0.05 or abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad

    def _paint_panel(self, p: QPainter, box: QRectF, panel: Panel, x_lo: float, x_hi: float, show_x: bool) -> None:
        y_lo, y_hi = self._y_limits(panel)
        ty = (lambda v: math.log10(v)) if panel.log_y else (lambda v: v)
        a, b = ty(y_lo), ty(y_hi)

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(box.left() + (x - x_lo) / (x_hi - x_lo) * box.width(),
                           box.bottom() - (ty(y) - a) / (b - a) * box.height())

        fm = p.fontMetrics()
        grid, axis = QPen(QColor("#e6e6e6")), QPen(QColor("#444444"))
        yticks = log_ticks(y_lo, y_hi) if panel.log_y else []
        if len(yticks) < 2:  # linear ticks, or a log axis spanning less than a factor of 2
            yticks = nice_ticks(y_lo, y_hi)
        for v in yticks:
            y = to_px(x_lo, v).y()
            p.setPen(grid)
            p.drawLine(QPointF(box.left(), y), QPointF(box.right(), y))
            p.setPen(axis)
            p.drawText(QRectF(0, y - fm.height() / 2, box.left() - 4, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, _label(v))
        for v in nice_ticks(x_lo, x_hi, 5):
            x = to_px(v, y_lo).x()
            p.setPen(grid)
            p.drawLine(QPointF(x, box.top()), QPointF(x, box.bottom()))
            if show_x:
                p.setPen(axis)
                p.drawText(QRectF(x - 30, box.bottom() + 2, 60, fm.height()), Qt.AlignmentFlag.AlignHCenter, _label(v))
        p.setPen(axis)
        p.drawRect(box)
        p.save()
        p.setClipRect(box)
        for k, name in enumerate(panel.series):
            pen = QPen(QColor(COLOURS[k % len(COLOURS)]), 1.6)
            p.setPen(pen)
            # missing values are skipped, not gaps: validation rows come less often than training ones
            points = [to_px(x, y) for x, y in zip(self.x, self.y[name])
                      if math.isfinite(x) and math.isfinite(y) and (y > 0 or not panel.log_y)]
            path = QPainterPath()
            for j, pt in enumerate(points):
                path.lineTo(pt) if j else path.moveTo(pt)
            p.drawPath(path)
            if panel.markers or len(points) == 1:
                for pt in points:
                    p.drawEllipse(pt, 2.0, 2.0)
        p.restore()
        self._paint_legend(p, box, panel)

    def _paint_legend(self, p: QPainter, box: QRectF, panel: Panel) -> None:
        fm = p.fontMetrics()
        labels = panel.labels or panel.series
        width = max(fm.horizontalAdvance(t) for t in labels) + 24
        y = box.top() + 4
        p.fillRect(QRectF(box.right() - width - 8, y - 2, width + 6, fm.height() * len(labels) + 4),
                   QColor(255, 255, 255, 200))
        for k, text in enumerate(labels):
            x = box.right() - width - 4
            p.setPen(QPen(QColor(COLOURS[k % len(COLOURS)]), 2))
            p.drawLine(QPointF(x, y + fm.height() / 2), QPointF(x + 14, y + fm.height() / 2))
            p.setPen(QColor("#222222"))
            p.drawText(QPointF(x + 18, y + fm.ascent()), text)
            y += fm.height()
