"""Redis replies as Python values: the client types them `bytes | str`, we store UTF-8 text."""

from __future__ import annotations


def text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
