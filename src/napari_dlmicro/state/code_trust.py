"""Whether a model's own Python code may run: the user confirms it once per source file, remembered by its sha256.

A bioimage.io package whose only runnable weights are a torch state dict
builds its network with Python source it carries, and running it runs that
program. The docks call :meth:`CodeTrust.decide` before they load a model: a
model that needs no code of its own loads as it is; one whose source file the
user trusted before (the same sha256) loads with ``trust_code``; otherwise the
dock's question is asked, and a Yes is remembered in the preferences, a No
loads nothing. What is remembered is the hash of the file, so a package whose
source changes is asked about again.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_dlmicro.core.errors import UntrustedCode
from napari_dlmicro.core.models.loader import code_to_trust
from napari_dlmicro.core.preferences import load_settings, save_settings

SECTION = "trusted_code"

Ask = Callable[[UntrustedCode], bool]  # the dock's question; True: the user trusts the code


def trust_key(needed: UntrustedCode) -> str:
    """What a trust is remembered by: the source file's sha256 (an installed callable: its name)."""
    return needed.sha256 or f"callable:{needed.source}"


def trusted() -> dict[str, Any]:
    """The remembered trusts: key -> the package and source they were given for."""
    value = load_settings(SECTION).get("trusted", {})
    return dict(value) if isinstance(value, dict) else {}


def is_trusted(needed: UntrustedCode) -> bool:
    """True when the user trusted this very source before."""
    return trust_key(needed) in trusted()


def remember_trust(needed: UntrustedCode) -> None:
    """Keep the user's trust in ``needed``'s source for later sessions."""
    entries = trusted()
    entries[trust_key(needed)] = {"package": needed.package, "source": needed.source}
    save_settings(SECTION, {"trusted": entries})


def _stamp(ref: str) -> float:
    path = Path(ref).expanduser()
    try:
        files = [path, *path.iterdir()] if path.is_dir() else [path]
        return max(f.stat().st_mtime for f in files)
    except (OSError, ValueError):
        return 0.0


class CodeTrust:
    """A dock's decision before loading a model: may its own code run?"""

    def __init__(self) -> None:
        self._probed: dict[tuple[str, float], UntrustedCode | None] = {}

    def needed(self, ref: str) -> UntrustedCode | None:
        """What loading ``ref`` would ask the user to trust, or None (looked up once per version of its files)."""
        key = (str(ref), _stamp(str(ref)))
        if key not in self._probed:
            self._probed[key] = code_to_trust(ref)
        return self._probed[key]

    def decide(self, ref: str, ask: Ask, asking: bool = True) -> bool | None:
        """``trust_code`` to load ``ref`` with, or None when its code may not run (then load nothing).

        ``asking=False`` (a live preview) never opens the question: an untrusted
        source is then a None. A package that cannot run at all raises its
        :class:`UserError` here, before anything is loaded.
        """
        needed = self.needed(ref)
        if needed is None:
            return False
        if is_trusted(needed):
            return True
        if not asking or not ask(needed):
            return None
        remember_trust(needed)
        return True
