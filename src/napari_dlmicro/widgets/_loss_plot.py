"""A small live loss plot (train and validation) on matplotlib's Qt canvas."""
from __future__ import annotations

from qtpy.QtWidgets import QVBoxLayout, QWidget


class LossPlot(QWidget):
    """Two curves, train and validation loss against step, log-scaled; redrawn on demand."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3, 2))
        # fixed margins: a tight layout recomputed at every redraw stalls napari for ~100 ms
        fig.subplots_adjust(left=0.2, bottom=0.22, right=0.97, top=0.95)
        self.canvas = FigureCanvasQTAgg(fig)
        self.ax = fig.add_subplot(111)
        self.ax.set_xlabel("step", fontsize=8)
        self.ax.set_ylabel("loss", fontsize=8)
        self.ax.tick_params(labelsize=7)
        (self._train,) = self.ax.plot([], [], label="train")
        (self._val,) = self.ax.plot([], [], label="validation")
        self.ax.legend(fontsize=7)
        self.steps: list[float] = []
        self.train: list[float] = []
        self.val: list[float] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setMinimumHeight(150)

    def clear(self) -> None:
        """Forget all points."""
        self.steps, self.train, self.val = [], [], []
        self._redraw()

    def add(self, step: float, train: float, val: float) -> None:
        """Append one point to each curve and redraw (cheap: a few hundred points at most)."""
        self.steps.append(step)
        self.train.append(train)
        self.val.append(val)
        self._redraw()

    def _redraw(self) -> None:
        self._train.set_data(self.steps, self.train)
        self._val.set_data(self.steps, self.val)
        if self.steps and min(self.train + self.val) > 0:
            self.ax.set_yscale("log")
        self.ax.relim()
        self.ax.autoscale_view()
        self.canvas.draw_idle()
