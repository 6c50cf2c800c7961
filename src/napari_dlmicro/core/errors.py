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


class UntrustedCode(UserError):
    """A model can run only by running Python source it carries, and the user has not trusted that source.

    ``package`` is the model's name, ``source`` the file it would run (or the
    installed callable it would call), ``sha256`` that file's hash (None for an
    installed callable). A dock asks the user and loads again with
    ``trust_code``; the CLI says to pass ``--trust-code``.
    """

    def __init__(self, package: str, source: str, sha256: str | None) -> None:
        self.package = package
        self.source = source
        self.sha256 = sha256
        super().__init__(f"the only weights of '{package}' this machine can run are a torch state dict, whose "
                         f"network is built by Python code from the package ({source}): running it runs that code",
                         "if you trust where the package comes from, confirm it (CLI: --trust-code); "
                         "otherwise ask its authors for ONNX or TorchScript weights")
