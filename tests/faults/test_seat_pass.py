"""Seat passes: only the member's ID number and code open them, for their session only."""

from __future__ import annotations

import pytest

from evalgrid.seat_pass import SeatPassError, open_pass, seal

ID, CODE = "110101199003078888", "123456"


def test_opens_with_the_right_identity_and_code_only() -> None:
    sealed = seal(b"form", session_id="ses-1", id_number=ID, code=CODE, cost=10)
    assert CODE.encode() not in sealed and ID.encode() not in sealed
    assert open_pass(sealed, session_id="ses-1", id_number=f" {ID} ", code=CODE) == b"form"
    for kwargs in ({"id_number": ID, "code": "123457"},
                   {"id_number": "110101199003078889", "code": CODE}):
        with pytest.raises(SeatPassError, match=r"^code: identity or code does not match"):
            open_pass(sealed, session_id="ses-1", **kwargs)
    with pytest.raises(SeatPassError, match=r"^code:"):  # bound to its session
        open_pass(sealed, session_id="ses-2", id_number=ID, code=CODE)


def test_malformed_passes_are_named() -> None:
    with pytest.raises(SeatPassError, match=r"^pass: malformed"):
        open_pass(b"not json", session_id="s", id_number=ID, code=CODE)
    with pytest.raises(SeatPassError, match=r"^pass: unknown format"):
        open_pass(b'{"v": 9}', session_id="s", id_number=ID, code=CODE)
