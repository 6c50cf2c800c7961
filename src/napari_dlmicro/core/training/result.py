"""What every training run returns: the model, where it was saved, its history and why it stopped."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ..runtime.events import Metric


class StopReason(str, Enum):
    """Why a training run ended."""

    BUDGET = "budget"  # the minutes or epochs were spent
    STOPPED = "stopped"  # the user asked it to stop: it finished its step, kept the best and saved
    CANCELLED = "cancelled"  # the user cancelled: the best checkpoint so far is what is kept


@dataclass
class TrainResult:
    """A trained model and how its run went.

    ``history`` holds one row per validation, keyed by :class:`Metric` names
    (``step``, ``seconds``, ``train_loss``, ``val_loss`` and the kind's scores);
    ``best`` is the row of the weights kept, with what was tuned afterwards
    (StarDist's thresholds). ``folder`` is None when nothing was saved.
    """

    kind: str
    model: Any
    folder: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    stopped: StopReason = StopReason.BUDGET
    steps: int = 0
    seconds: float = 0.0

    @property
    def stopped_early(self) -> bool:
        """True when the user stopped or cancelled the run."""
        return self.stopped is not StopReason.BUDGET

    @property
    def best_val_loss(self) -> float:
        """The validation loss of the kept weights (inf when never validated)."""
        return float(self.best.get(Metric.VAL_LOSS, math.inf))

    def score(self) -> float | None:
        """The headline validation score of the kept weights: tuned F1, F1, mean IoU or accuracy."""
        for key in (Metric.F1_TUNED, Metric.F1, Metric.MEAN_IOU, Metric.ACCURACY):
            if key in self.best:
                return float(self.best[key])
        return None

    def summary(self) -> str:
        """One line for the terminal and the docks' status."""
        where = f"saved to {self.folder}" if self.folder is not None else "nothing saved"
        score = self.score()
        extra = f", validation score {score:.3f}" if score is not None else (
            f", validation loss {self.best_val_loss:.4g}" if math.isfinite(self.best_val_loss) else "")
        how = {StopReason.BUDGET: "", StopReason.STOPPED: " (stopped)",
               StopReason.CANCELLED: " (cancelled)"}[self.stopped]
        return f"{self.kind}: {self.steps} steps{how}; {where}{extra}"
