"""The helper process of :mod:`.offload`: runs one function call at a time."""
from __future__ import annotations

import importlib
import sys

from napari_dlmicro.core.runtime.offload import receive, send


def serve() -> None:
    """Answer (module, function, args) requests from stdin until it closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the reply stream
    from napari_dlmicro.core.models.stardist import geometry  # noqa: F401 - import stardist before the first request

    while True:
        try:
            module, name, args = receive(stdin)
        except EOFError:
            return
        try:
            fn = importlib.import_module(module)
            for part in name.split("."):
                fn = getattr(fn, part)
            reply = (True, fn(*args))
        except Exception as exc:
            reply = (False, exc)
        send(stdout, reply)


if __name__ == "__main__":
    serve()
