"""Certificate revocation on the servers: the CA-signed CRL, reloaded live, enforced per call.

``evalgrid pki revoke`` writes ``crl.pem`` (an X.509 CRL signed by the provincial CA) into the
PKI directory. Every server (the coordinator, every site agent) holds a ``Revocations`` for its
own PKI directory: it reloads the file whenever it changes (its stat signature is polled twice a
second: no inotify dependency, and it works on any filesystem), and ``RevocationGuard``, a server
interceptor, refuses a revoked certificate on its next call (UNAUTHENTICATED, the message says
"revoked") and closes the streams it holds open (they are tracked per certificate serial).

How agents get the list in a real deployment: agents run on other hosts, so the coordinator
sends the CRL down each site's command stream (at registration and whenever it changes) and
the agent installs it in its own PKI directory (``install_crl``). The list is signed by the CA,
so an agent accepts only a list it can verify against its own ``ca.pem``, and only a newer one
(a higher CRL number: no rollback). A file copied in by hand is picked up the same way.

A CRL that fails to load (tampered, another CA, half written by a foreign tool) never clears
revocations already in force: the previous list stays and the failure is logged.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from evalgrid.pki.directory import CA_CERT_NAME, CRL_NAME
from evalgrid.pki.identity import PkiError, identity_from_pem

__all__ = [
    "POLL_INTERVAL_S",
    "CrlView",
    "RevocationError",
    "RevocationGuard",
    "Revocations",
    "install_crl",
    "read_crl",
]

log = logging.getLogger("evalgrid.revocation")

#: How often a server looks at its CRL file's stat signature (cheap: one stat call).
POLL_INTERVAL_S: Final = 0.5

_EXEMPT: Final[tuple[str, ...]] = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class RevocationError(Exception):
    """A CRL is unreadable, not signed by this CA, or older than the one in force."""


@dataclass(frozen=True)
class CrlView:
    """What a verified CRL says: its number and the serials it lists (with their reasons)."""

    number: int
    reasons: dict[int, str]
    pem: bytes = b""

    @property
    def serials(self) -> frozenset[int]:
        return frozenset(self.reasons)


EMPTY: Final = CrlView(number=0, reasons={})


def read_crl(pem: bytes, ca_pem: bytes) -> CrlView:
    """Parse and verify a CRL against the CA certificate; ``RevocationError`` if it fails."""
    try:
        crl = x509.load_pem_x509_crl(pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise RevocationError(f"crl: not a PEM CRL ({exc})") from exc
    public = ca.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise RevocationError("ca: not an EC CA certificate")
    if crl.issuer != ca.subject or not crl.is_signature_valid(public):
        raise RevocationError("crl: not signed by this provincial CA")
    try:
        number = int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound as exc:
        raise RevocationError("crl: it has no CRL number") from exc
    reasons: dict[int, str] = {}
    for entry in crl:
        try:
            flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            reasons[entry.serial_number] = flag.value
        except x509.ExtensionNotFound:
            reasons[entry.serial_number] = "unspecified"
    return CrlView(number=number, reasons=reasons, pem=pem)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def install_crl(pki_dir: Path, pem: bytes) -> CrlView | None:
    """Verify ``pem`` against ``pki_dir/ca.pem`` and write it as the CRL if it is newer.

    Returns the installed view, or None when the list is not newer than the one in place (a
    resend after a reconnect, or a replay of an old list). Raises ``RevocationError`` for a
    list this CA did not sign. The write is atomic (temp file, fsync, rename).
    """
    pki_dir = Path(pki_dir)
    view = read_crl(pem, (pki_dir / CA_CERT_NAME).read_bytes())
    path = pki_dir / CRL_NAME
    if path.exists():
        try:
            current = read_crl(path.read_bytes(), (pki_dir / CA_CERT_NAME).read_bytes())
        except RevocationError:
            current = EMPTY  # a broken file in place: the verified newcomer replaces it
        if view.number <= current.number:
            return None
    fd, tmp = tempfile.mkstemp(dir=pki_dir, prefix=f".{CRL_NAME}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return view


ChangeListener = Callable[[CrlView], Awaitable[None]]


class Revocations:
    """The CRL in force on one server, reloaded when its file changes; open streams by serial."""

    def __init__(self, pki_dir: Path, *, owner: str = "server") -> None:
        self.pki_dir = Path(pki_dir)
        self.path = self.pki_dir / CRL_NAME
        self.owner = owner
        self.view: CrlView = EMPTY
        self._key: tuple[int, int, int] | None = None
        self._streams: dict[int, set[asyncio.Task[Any]]] = {}
        self._revoked_tasks: set[asyncio.Task[Any]] = set()
        self._listeners: list[ChangeListener] = []
        self._changed = asyncio.Event()  # set and replaced on each change (binds lazily)
        self.reload()

    # --- the list ------------------------------------------------------------------------

    def is_revoked(self, serial: int) -> bool:
        return serial in self.view.reasons

    def reload(self) -> frozenset[int]:
        """Load the file if its stat signature changed; return the serials newly revoked."""
        key = _stat_key(self.path)
        if key == self._key:
            return frozenset()
        self._key = key
        if key is None:
            return frozenset()  # no list yet (or removed: revocations already in force stay)
        try:
            view = read_crl(self.path.read_bytes(), (self.pki_dir / CA_CERT_NAME).read_bytes())
        except (OSError, RevocationError) as exc:
            log.error("%s: CRL %s not loaded, the previous list stays in force: %s",
                      self.owner, self.path, exc)
            return frozenset()
        return self._apply(view)

    def install(self, pem: bytes) -> frozenset[int]:
        """Install a pushed list (verified, newer only) and apply it now."""
        view = install_crl(self.pki_dir, pem)
        if view is None:
            return frozenset()
        self._key = _stat_key(self.path)
        return self._apply(view)

    def _apply(self, view: CrlView) -> frozenset[int]:
        if view.number < self.view.number:
            log.error("%s: CRL number %d is older than the one in force (%d): ignored",
                      self.owner, view.number, self.view.number)
            return frozenset()
        fresh = view.serials - self.view.serials
        self.view = view
        if fresh:
            log.warning("%s: CRL %d in force: %d certificate(s) newly revoked",
                        self.owner, view.number, len(fresh))
        for serial in fresh:
            for task in self._streams.pop(serial, set()):
                self._revoked_tasks.add(task)
                task.cancel()
        self._changed.set()
        self._changed = asyncio.Event()
        return fresh

    def on_change(self, listener: ChangeListener) -> None:
        """Have ``watch`` call ``listener(view)`` for the list in force when it starts (if any)
        and after every change; a listener keeps its own record of what it already handled."""
        self._listeners.append(listener)

    async def watch(self, interval_s: float = POLL_INTERVAL_S) -> None:
        """Reload whenever the file changes, until cancelled; listeners run after each change."""
        last = 0
        while True:
            self.reload()
            if self.view.number != last:
                last = self.view.number
                for listener in list(self._listeners):
                    try:
                        await listener(self.view)
                    except Exception:
                        log.exception("%s: a CRL listener failed", self.owner)
            await asyncio.sleep(interval_s)

    async def wait_for(self, number: int) -> CrlView:
        """Until a list numbered ``number`` or higher is in force (tests and tools await this)."""
        while self.view.number < number:
            await self._changed.wait()
        return self.view

    # --- open streams --------------------------------------------------------------------

    def track(self, serial: int, task: asyncio.Task[Any]) -> None:
        self._streams.setdefault(serial, set()).add(task)

    def untrack(self, serial: int, task: asyncio.Task[Any]) -> None:
        tasks = self._streams.get(serial)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._streams[serial]
        self._revoked_tasks.discard(task)

    def was_revoked(self, task: asyncio.Task[Any] | None) -> bool:
        """True when ``task`` was cancelled because its certificate got revoked."""
        return task is not None and task in self._revoked_tasks

    def open_streams(self, serial: int) -> int:
        return len(self._streams.get(serial, ()))


# --- the interceptor ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _peer(pem: bytes) -> tuple[int, str]:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        who = str(identity_from_pem(pem))
    except PkiError:
        who = "no evalgrid identity"
    return cert.serial_number, who


def _peer_of(context: Any) -> tuple[int, str] | None:
    auth: dict[str, list[bytes]] = context.auth_context() or {}
    certs = auth.get("x509_pem_cert") or []
    if not certs:
        return None
    try:
        return _peer(bytes(certs[0]))
    except ValueError:
        return None


def _message(serial: int, who: str, reason: str) -> str:
    return (f"certificate {serial:x} ({who}) is revoked ({reason}): "
            "ask the provincial CA for a new one")


class RevocationGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuse revoked certificates per call, and end their open streams when they get revoked.

    Installed inside the identity interceptor (``start_server(extra_interceptors=...)``), so it
    runs on calls that already passed the certificate and role checks. A streaming call registers
    its task under the caller's serial; when a reload revokes that serial the task is cancelled
    and the call ends UNAUTHENTICATED with the reason, within one poll interval.
    """

    def __init__(self, revocations: Revocations) -> None:
        self.revocations = revocations

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(_EXEMPT):
            return handler
        return self._wrap(handler)

    def _wrap(self, handler: Any) -> Any:
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream), **kwargs)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary), **kwargs)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream), **kwargs)
        return grpc.unary_unary_rpc_method_handler(self._unary(handler.unary_unary), **kwargs)

    def _refused(self, context: Any) -> tuple[int, str] | str | None:
        """The caller's (serial, who), or the refusal message when it is revoked."""
        peer = _peer_of(context)
        if peer is None:
            return None  # no certificate: the identity interceptor has the say on that
        serial, who = peer
        reason = self.revocations.view.reasons.get(serial)
        if reason is not None:
            log.warning("%s: refused revoked certificate %x (%s)", self.revocations.owner,
                        serial, who)
            return _message(serial, who, reason)
        return peer

    def _unary(self, behavior: Any) -> Any:
        if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
            def sync_unary(request: Any, context: Any) -> Any:
                refused = self._refused(context)
                if isinstance(refused, str):
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, refused)
                return behavior(request, context)
            return sync_unary

        async def unary(request: Any, context: Any) -> Any:
            refused = self._refused(context)
            if isinstance(refused, str):
                await _abort(context, refused)
            return await behavior(request, context)
        return unary

    def _streaming(self, behavior: Any) -> Any:
        revocations = self.revocations
        if inspect.isasyncgenfunction(behavior):
            async def stream(request: Any, context: Any) -> Any:
                refused = self._refused(context)
                if isinstance(refused, str):
                    await _abort(context, refused)
                task = asyncio.current_task()
                if refused is None or task is None:
                    async for item in behavior(request, context):
                        yield item
                    return
                serial, who = refused
                revocations.track(serial, task)
                try:
                    async for item in behavior(request, context):
                        yield item
                except asyncio.CancelledError:
                    if not revocations.was_revoked(task):
                        raise
                    task.uncancel()
                    reason = revocations.view.reasons.get(serial, "unspecified")
                    log.warning("%s: closed a stream of revoked certificate %x (%s)",
                                revocations.owner, serial, who)
                    await _abort(context, _message(serial, who, reason))
                finally:
                    revocations.untrack(serial, task)
            return stream

        if inspect.iscoroutinefunction(behavior):
            async def writer(request: Any, context: Any) -> None:
                refused = self._refused(context)
                if isinstance(refused, str):
                    await _abort(context, refused)
                task = asyncio.current_task()
                if refused is None or task is None:
                    await behavior(request, context)
                    return
                serial, who = refused
                revocations.track(serial, task)
                try:
                    await behavior(request, context)
                except asyncio.CancelledError:
                    if not revocations.was_revoked(task):
                        raise
                    task.uncancel()
                    reason = revocations.view.reasons.get(serial, "unspecified")
                    await _abort(context, _message(serial, who, reason))
                finally:
                    revocations.untrack(serial, task)
            return writer

        def sync_stream(request: Any, context: Any) -> Any:
            refused = self._refused(context)
            if isinstance(refused, str):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, refused)
            yield from behavior(request, context)
        return sync_stream


async def _abort(context: Any, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
    raise AssertionError("grpc.aio context.abort() returned")  # pragma: no cover
