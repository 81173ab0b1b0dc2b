"""The one error both console clients raise: what the server said, fit to show to staff."""

from __future__ import annotations

import grpc

from evalgrid.i18n import refusal


class ClientError(Exception):
    """A call the server refused or could not answer; the message is for the staff."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def client_error(exc: grpc.aio.AioRpcError) -> ClientError:
    return ClientError(refusal(exc.details() or exc.code().name), code=exc.code().name)

