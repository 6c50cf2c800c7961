"""The docks' decision before a model's own code runs: asked once per source file, a Yes remembered by sha256."""
from __future__ import annotations

import pytest

from napari_dlmicro.core.errors import UntrustedCode
from napari_dlmicro.state import code_trust
from napari_dlmicro.state.code_trust import CodeTrust, is_trusted


class Asker:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[UntrustedCode] = []

    def __call__(self, needed: UntrustedCode) -> bool:
        self.asked.append(needed)
        return self.answer


@pytest.fixture
def needs(monkeypatch):
    """Which models need trust, as the loader would find (ref -> UntrustedCode or None)."""
    found = {"plain": None, "pkg": UntrustedCode("pkg", "network.py", "a" * 64)}
    monkeypatch.setattr(code_trust, "code_to_trust", lambda ref: found[ref])
    return found


def test_a_model_without_code_of_its_own_loads_without_asking(needs):
    ask = Asker(True)
    assert CodeTrust().decide("plain", ask) is False and not ask.asked


def test_yes_is_remembered_for_that_source_across_sessions(needs):
    ask = Asker(True)
    assert CodeTrust().decide("pkg", ask) is True and len(ask.asked) == 1
    assert is_trusted(needs["pkg"])
    again = Asker(False)
    assert CodeTrust().decide("pkg", again) is True and not again.asked  # a new dock, a new session


def test_no_loads_nothing_and_is_not_remembered(needs):
    ask = Asker(False)
    trust = CodeTrust()
    assert trust.decide("pkg", ask) is None
    assert trust.decide("pkg", ask) is None and len(ask.asked) == 2  # asked again at the next run
    assert not is_trusted(needs["pkg"])


def test_a_changed_source_is_asked_about_again(needs):
    CodeTrust().decide("pkg", Asker(True))
    needs["pkg"] = UntrustedCode("pkg", "network.py", "b" * 64)
    ask = Asker(False)
    assert CodeTrust().decide("pkg", ask) is None and len(ask.asked) == 1


def test_a_live_preview_never_asks(needs):
    ask = Asker(True)
    assert CodeTrust().decide("pkg", ask, asking=False) is None and not ask.asked
