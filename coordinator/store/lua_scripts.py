"""The store's Lua scripts, put together from this package's `.lua` files: a rule several
scripts apply (the overlap of bookings, the audit chain's append, a command's fence) is
written once, in its own file, and put ahead of each script that applies it."""

from __future__ import annotations

from importlib import resources


def lua_script(*files: str, body: str = "") -> str:
    """The files' text, in order, then `body`: what `register_script` and EVAL take. Comment
    lines are left out: an EVAL inside a MULTI sends the whole text each time."""
    here = resources.files(__package__)
    lines = [line for name in files
             for line in here.joinpath(name).read_text("utf-8").splitlines(keepends=True)
             if not line.lstrip().startswith("--")]
    return "".join(lines) + body
