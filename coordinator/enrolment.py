"""Device-bound workstation enrolment, on the coordinator: one-time codes and CSR signing.

The design, and why: a workstation makes its own key pair and never hands the private key to
anyone; it proves it may become "SITE/WS" with a one-time activation code that the site's desk
asked for. The agent relays the CSR with the code (`SiteLink.EnrolWorkstation`) and the
coordinator, which holds the provincial CA, checks the code and signs a certificate whose
identity it derives itself: the site from the relaying agent's certificate, the workstation from
the site's registered inventory. The alternative, a site-level issuing CA on every agent, was
rejected: the provincial CA is constrained to no sub-CAs (path length 0), every server trusts
one root and one CRL, and a stolen agent could then mint certificates offline and unaudited.
Here a compromised agent can at most enrol its own site's workstations, one code at a time,
each on the audit trail.

Codes: 8 characters from an alphabet without look-alikes (about 40 bits), valid for
``VALID_FOR`` and for one enrolment; stored only as an HMAC under a key derived from the master
key (a Redis dump does not give them away); a new code for the same workstation replaces the
old one; ``MAX_WRONG`` wrong tries burn the code. Every step is audited, never with the code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization

from coordinator.domain.pii import derive_key
from coordinator.errors import WorkflowError
from coordinator.sign_in_guard import Record
from coordinator.store.activation_codes import ActivationCodes
from evalgrid.clock import Clock
from evalgrid.pki.ca import issue_from_csr
from evalgrid.pki.identity import PkiError

__all__ = ["ALPHABET", "CODE_LENGTH", "MAX_WRONG", "VALID_FOR", "EnrolmentError", "Enrolments"]

ALPHABET: Final = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud, typed by hand
CODE_LENGTH: Final = 8
VALID_FOR: Final = timedelta(minutes=15)
MAX_WRONG: Final = 5
REFUSAL_WINDOW: Final = timedelta(minutes=10)


class EnrolmentError(WorkflowError):
    """A refused enrolment step: ``field`` names what was wrong, ``code`` the kind of refusal
    (the servicers answer it like any workflow refusal)."""


class Enrolments:
    def __init__(self, redis: aioredis.Redis, clock: Clock, pki_dir: Path, master_key: bytes,
                 record: Record) -> None:
        self.codes = ActivationCodes(redis)
        self.clock = clock
        self.pki_dir = Path(pki_dir)
        self.record = record
        self._key = derive_key(master_key, "activation-codes")

    def _digest(self, subject: str, code: str) -> str:
        normal = "".join(code.split()).upper().replace("-", "")
        return hmac.new(self._key, f"{subject}\0{normal}".encode(), hashlib.sha256).hexdigest()

    async def issue_code(self, site_id: str, workstation_id: str,
                         inventory: set[str] | None) -> tuple[str, datetime]:
        """A fresh one-time code for ``SITE/WS`` (replacing any earlier one), and its expiry."""
        if inventory is None or workstation_id not in inventory:
            raise EnrolmentError("workstation_id", f"{workstation_id!r} is not a workstation of "
                                 f"site {site_id} in the registry", code="not_found")
        subject = f"{site_id}/{workstation_id}"
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        expires = self.clock.now() + VALID_FOR
        await self.codes.replace(subject, digest=self._digest(subject, code),
                                 expires=expires.isoformat(),
                                 keep_s=int(VALID_FOR.total_seconds()) + 86_400)
        await self.record("workstation.activation_issued", site_id,
                          {"workstation": workstation_id, "expires": expires.isoformat()})
        return f"{code[:4]}-{code[4:]}", expires

    async def _refuse(self, site_id: str, workstation_id: str, reason: str, message: str,
                      code: str, field: str = "activation_code") -> EnrolmentError:
        await self._audit_refusal(site_id, workstation_id, reason)
        return EnrolmentError(field, message, code=code)

    async def _audit_refusal(self, site_id: str, workstation_id: str, reason: str) -> None:
        """Refusals are audited in aggregate: per site and window, the 1st, 2nd, 4th, 8th...
        with the count so far, so a flood adds a handful of entries, not one per call."""
        now = self.clock.now()
        window = int(now.timestamp() // REFUSAL_WINDOW.total_seconds())
        count = await self.codes.count_refusal(
            site_id, window, keep_s=int(REFUSAL_WINDOW.total_seconds()) * 2)
        if count & (count - 1) == 0:
            start = datetime.fromtimestamp(window * REFUSAL_WINDOW.total_seconds(), now.tzinfo)
            await self.record("workstation.enrol_refused", site_id,
                              {"workstation": workstation_id, "reason": reason,
                               "refusals_in_window": count,
                               "window_start": start.isoformat()})

    async def enrol(self, site_id: str, workstation_id: str, code: str,
                    csr_pem: bytes) -> tuple[bytes, int]:
        """Check the code, sign the CSR for ``SITE/WS``, burn the code; (cert PEM, serial)."""
        for name, value in (("activation_code", code), ("csr_pem", csr_pem)):
            if not value:
                raise EnrolmentError(name, "required for an enrolment", code="invalid")
        subject = f"{site_id}/{workstation_id}"
        held = await self.codes.pending(subject)
        if not held:
            raise await self._refuse(
                site_id, workstation_id, "no code", "no activation code is pending for this "
                "workstation (never issued, already used, or replaced): ask the desk for one",
                "precondition")
        if self.clock.now() >= datetime.fromisoformat(held["expires"]):
            await self.codes.burn(subject)
            raise await self._refuse(site_id, workstation_id, "expired",
                                     "the activation code has expired: ask the desk for a "
                                     "new one", "precondition")
        if not hmac.compare_digest(held["digest"], self._digest(subject, code)):
            wrong = await self.codes.wrong_try(subject)
            if wrong >= MAX_WRONG:
                await self.codes.burn(subject)
                raise await self._refuse(site_id, workstation_id, "wrong code, code burned",
                                         f"wrong activation code ({wrong} wrong tries): the "
                                         "code is no longer valid, ask the desk for a new one",
                                         "denied")
            raise await self._refuse(site_id, workstation_id, "wrong code",
                                     f"wrong activation code ({MAX_WRONG - wrong} tries left)",
                                     "denied")
        try:
            cert = await asyncio.to_thread(issue_from_csr, self.pki_dir, csr_pem,
                                           "workstation", subject)
        except PkiError as exc:
            raise await self._refuse(site_id, workstation_id, "bad csr",
                                     str(exc).removeprefix("csr: "), "invalid",
                                     field="csr_pem") from exc
        if not await self.codes.burn(subject):  # another enrolment used the code meanwhile
            raise await self._refuse(site_id, workstation_id, "already used",
                                     "the activation code was used by another enrolment",
                                     "precondition")
        await self.record("workstation.enrolled", site_id,
                          {"workstation": workstation_id,
                           "serial": format(cert.serial_number, "x"),
                           "not_after": cert.not_valid_after_utc.isoformat()})
        return cert.public_bytes(serialization.Encoding.PEM), cert.serial_number
