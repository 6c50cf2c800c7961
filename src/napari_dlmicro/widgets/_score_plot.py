"""A live plot of validation scores (F1 and AP at IoU 0.5) against training step."""
from __future__ import annotations

from qtpy.QtWidgets import QVBoxLayout, QWidget


class ScorePlot(QWidget):
    """Named curves on a 0..1 axis, appended point by point."""

    def __init__(self, names: tuple[str, ...] = ("f1", "ap"), xlabel: str = "step", parent=None) -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3, 2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(fig)
        self.ax = fig.add_subplot(111)
        self.ax.set_xlabel(xlabel, fontsize=8)
        self.ax.set_ylim(0, 1)
        self.ax.tick_params(labelsize=7)
        self.lines = {n: self.ax.plot([], [], marker=".", label=n.upper())[0] for n in names}
        self.ax.legend(fontsize=7)
        self.x: list[float] = []
        self.y: dict[str, list[float]] = {n: [] for n in names}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setMinimumHeight(140)

    def clear(self) -> None:
        self.x = []
        self.y = {n: [] for n in self.y}
        self._redraw()

    def add(self, x: float, values: dict[str, float]) -> None:
        self.x.append(x)
        for n in self.y:
            self.y[n].append(float(values.get(n, float("nan"))))
        self._redraw()

    def set_curves(self, x: list[float], curves: dict[str, list[float]]) -> None:
        """Replace every point (for a plot of scores against IoU)."""
        self.x = list(x)
        self.y = {n: list(curves.get(n, [])) for n in self.y}
        self._redraw()

    def _redraw(self) -> None:
        for n, line in self.lines.items():
            line.set_data(self.x, self.y[n])
        self.ax.relim()
        self.ax.autoscale_view(scaley=False)
        self.canvas.draw_idle()


class TrainingPlot(QWidget):
    """Loss (train, validation; log scale) and validation F1/AP in one figure, one cheap redraw per epoch.

    A fixed layout (no tight-layout pass) keeps each redraw short, so the
    event loop stays responsive while a training job competes for the CPU.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3.2, 2.4), dpi=80)
        fig.subplots_adjust(left=0.17, right=0.97, top=0.96, bottom=0.12, hspace=0.35)
        self.canvas = FigureCanvasQTAgg(fig)
        self.loss_ax, self.score_ax = fig.add_subplot(211), fig.add_subplot(212)
        self.loss_ax.set_yscale("log")
        self.score_ax.set_ylim(0, 1)
        for ax in (self.loss_ax, self.score_ax):
            ax.tick_params(labelsize=6)
        self.curves = {
            "train_loss": self.loss_ax.plot([], [], label="train loss")[0],
            "val_loss": self.loss_ax.plot([], [], label="validation loss")[0],
            "f1": self.score_ax.plot([], [], marker=".", label="F1@0.5")[0],
            "ap": self.score_ax.plot([], [], marker=".", label="AP@0.5")[0],
        }
        self.loss_ax.legend(fontsize=6)
        self.score_ax.legend(fontsize=6)
        self.x: list[float] = []
        self.y: dict[str, list[float]] = {k: [] for k in self.curves}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setMinimumHeight(200)

    def clear(self) -> None:
        self.x = []
        self.y = {k: [] for k in self.curves}
        self._redraw()

    def add(self, step: float, values: dict[str, float]) -> None:
        """One validation row (train_loss, val_loss, f1, ap; missing ones left as gaps)."""
        self.x.append(step)
        for k in self.curves:
            v = values.get(k)
            self.y[k].append(float("nan") if v is None or (k.endswith("loss") and not v > 0) else float(v))
        self._redraw()

    def _redraw(self) -> None:
        for k, line in self.curves.items():
            line.set_data(self.x, self.y[k])
        for ax in (self.loss_ax, self.score_ax):
            ax.relim()
            ax.autoscale_view(scaley=ax is self.loss_ax)
        self.canvas.draw_idle()
