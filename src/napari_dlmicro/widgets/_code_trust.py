"""The question before a model's own Python code runs (a bioimage.io package built by its source)."""
from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QMessageBox, QWidget

from napari_dlmicro.core.errors import UntrustedCode, UserError
from napari_dlmicro.state.code_trust import CodeTrust


def confirm_code_trust(parent: QWidget, needed: UntrustedCode) -> bool:
    """Ask whether ``needed``'s source may run; True for Yes (No is the default button)."""
    digest = needed.sha256 or "(an installed library's code)"
    answer = QMessageBox.question(
        parent, "Run the model's own code?",
        f"The model '{needed.package}' can only run by running Python code that comes with it:\n\n"
        f"    {needed.source}\n    sha256 {digest}\n\n"
        "Running the model runs that program, with all your permissions. Do this only if you trust where "
        "the package comes from. A Yes is remembered for this file.\n\nRun it?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def trust_for(parent: QWidget, trust: CodeTrust, ref: str, title: str, asking: bool = True) -> bool | None:
    """``trust_code`` to load ``ref`` with: False when it needs none, True when trusted (asked now or before),
    None when its code may not run (the user said No, or ``asking`` is False) or it cannot run at all (said)."""
    if not ref:
        return False  # building the job says that no model is chosen
    try:
        decided = trust.decide(ref, lambda needed: confirm_code_trust(parent, needed), asking)
    except UserError as exc:
        show_error(f"{title}: {exc}")
        return None
    if decided is None:
        show_info(f"{title}: nothing was run, as the code of '{Path(ref).name}' is not trusted"
                  + ("" if asking else " (Preview view or Run asks)"))
    return decided
