"""Errors meant for the user: what was wrong, and what to do about it."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing resource, explained in words a microscopist reads.

    ``str(err)`` is the whole message: the problem, then the remedy. The docks
    show it as a notification and the CLI prints it on one line; neither shows
    a traceback.
    """

    def __init__(self, problem: str, remedy: str = "") -> None:
        self.problem = problem.rstrip(".")
        remedy = remedy.rstrip(".")
        self.remedy = remedy[:1].upper() + remedy[1:]
        super().__init__(self.problem + (f". {self.remedy}." if self.remedy else "."))


class Cancelled(Exception):
    """The user cancelled the job; whatever was finished is kept."""
