"""Mutual-TLS glue for grpc.aio: credentials, shared options, and who-is-calling.

The caller's identity comes only from the client certificate that the TLS layer has verified
against the provincial CA (``auth_context()["x509_pem_cert"]``), never from a request field.
``IdentityInterceptor`` reads it before any servicer code runs and puts it in a ``ContextVar``;
servicers ask ``current_identity()`` or ``require_role(...)``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

import grpc

from evalgrid.coordinator_channel import SERVICE_CONFIG, RetryIdempotent, channel_target
from evalgrid.limits import OWN_BUDGET, RateLimit, TokenBuckets, clip
from evalgrid.pki.directory import load_identity_files
from evalgrid.pki.identity import Identity, PkiError, Role, identity_from_pem
from evalgrid.request_fields import RequestFieldError, check_request

__all__ = [
    "AUTH_CONTEXT_CERT_KEY",
    "EXEMPT_METHOD_PREFIXES",
    "KEEPALIVE_OPTIONS",
    "MAX_CONCURRENT_STREAMS",
    "MAX_MESSAGE_BYTES",
    "SERVER_OPTIONS",
    "SERVER_UNARY_DEADLINE_S",
    "IdentityInterceptor",
    "InvalidRequestError",
    "NoIdentityError",
    "PermissionDeniedError",
    "RateLimitedError",
    "SourceLimitInterceptor",
    "UnauthenticatedError",
    "abort_denied",
    "call_scope",
    "channel_credentials",
    "current_identity",
    "identity_from_context",
    "new_server",
    "require_role",
    "secure_channel",
    "server_credentials",
    "source_of",
]

log = logging.getLogger(__name__)

#: auth_context key holding the verified peer leaf certificate (PEM); the value is a list of one.
AUTH_CONTEXT_CERT_KEY: Final = "x509_pem_cert"

#: Methods that stay behind mTLS but need no evalgrid identity, so any tool holding a CA-signed
#: certificate (or a load balancer's probe) can ask for health and discover the API.
EXEMPT_METHOD_PREFIXES: Final[tuple[str, ...]] = ("/grpc.health.v1.Health/", "/grpc.reflection.")

MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024

#: Used on BOTH ends. Clients and servers ping every 20 s and drop a peer silent for 10 s more, so
#: a dead site agent (or coordinator) is noticed in about 30 s even behind NAT that forgets idle
#: flows. Servers accept pings as often as every 10 s, even with no call in flight (an agent's
#: long-lived stream may be idle); with a stricter server the client would get GOAWAY
#: "too_many_pings" and reconnect in a loop.
KEEPALIVE_OPTIONS: Final[tuple[tuple[str, int], ...]] = (
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)

_IDENTITY: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "evalgrid_identity", default=None
)
_CALL: contextvars.ContextVar[str] = contextvars.ContextVar("evalgrid_call", default="")


class UnauthenticatedError(Exception):
    """The peer presented no certificate that names an evalgrid identity."""


class NoIdentityError(RuntimeError):
    """``current_identity()`` was called outside an RPC that ``IdentityInterceptor`` admitted."""


class PermissionDeniedError(Exception):
    """The authenticated peer's role may not perform the action (message names both)."""

    def __init__(self, message: str, *, action: str, identity: Identity | None) -> None:
        super().__init__(message)
        self.action = action
        self.identity = identity


class RateLimitedError(Exception):
    """The caller's certificate has spent its call budget for now (RESOURCE_EXHAUSTED)."""


# --- credentials -----------------------------------------------------------------------------


def server_credentials(pki_dir: Path, role: str, subject_id: str) -> grpc.ServerCredentials:
    """Server credentials that present this party's cert and REQUIRE a CA-signed client cert."""
    files = load_identity_files(pki_dir, role, subject_id)
    return grpc.ssl_server_credentials(
        [(files.key, files.cert)], root_certificates=files.ca, require_client_auth=True
    )


def channel_credentials(pki_dir: Path, role: str, subject_id: str) -> grpc.ChannelCredentials:
    """Channel credentials that trust only the provincial CA and present this party's cert."""
    files = load_identity_files(pki_dir, role, subject_id)
    return grpc.ssl_channel_credentials(
        root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert
    )


def secure_channel(
    target: str,
    creds: grpc.ChannelCredentials,
    *,
    extra_options: Sequence[tuple[str, Any]] = (),
    retry: bool = False,
) -> grpc.aio.Channel:
    """An aio channel with the shared keepalive/message-size options.

    `target` may list several coordinators ("h1:p1,h2:p2": the channel follows the one that
    leads); `retry` retries idempotent calls on UNAVAILABLE (both: evalgrid.coordinator_channel).
    No ``ssl_target_name_override``: certificates carry localhost/127.0.0.1/::1 (and any hosts
    given at issue time), so the target's host name is verified for real.
    """
    grpc_target, options = channel_target(target)
    if retry:
        options.append(("grpc.service_config", SERVICE_CONFIG))
    return grpc.aio.secure_channel(
        grpc_target, creds, options=[*KEEPALIVE_OPTIONS, *options, *extra_options],
        interceptors=[RetryIdempotent()] if retry else None)


def new_server(
    *,
    interceptors: Sequence[Any] = (),
    allowed_roles: Collection[Role] | None = None,
    extra_options: Sequence[tuple[str, Any]] = (),
    **server_kwargs: Any,
) -> grpc.aio.Server:
    """A grpc.aio server with ``IdentityInterceptor`` outermost and the shared options.

    Outermost means the identity is already set when any other interceptor's handler runs.
    ``server_kwargs`` go to ``grpc.aio.server`` (e.g. ``migration_thread_pool`` for sync code).
    """
    return grpc.aio.server(
        interceptors=[IdentityInterceptor(allowed_roles=allowed_roles), *interceptors],
        options=[*SERVER_OPTIONS, *extra_options],
        **server_kwargs,
    )


# --- identity of the caller ------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _parse_cached(pem: bytes) -> Identity:
    # A long-lived agent makes many calls with one cert; parse it once. Errors are not cached.
    return identity_from_pem(pem)


def identity_from_context(context: Any) -> Identity:
    """The ``Identity`` in the verified peer certificate of a servicer context.

    Raises ``UnauthenticatedError`` with the reason when there is no certificate (the server
    was not configured for mutual TLS) or it carries no valid evalgrid identity.
    """
    auth: dict[str, list[bytes]] = context.auth_context() or {}
    certs = auth.get(AUTH_CONTEXT_CERT_KEY) or []
    if not certs:
        raise UnauthenticatedError(
            "no client certificate: this service requires mutual TLS with an evalgrid certificate"
        )
    try:
        return _parse_cached(bytes(certs[0]))
    except PkiError as exc:
        raise UnauthenticatedError(
            f"client certificate carries no usable evalgrid identity: {exc}"
        ) from exc


def current_identity() -> Identity:
    """The authenticated caller of the RPC being served (set by ``IdentityInterceptor``)."""
    identity = _IDENTITY.get()
    if identity is None:
        raise NoIdentityError(
            "no caller identity: not inside an RPC admitted by IdentityInterceptor "
            "(or the method is exempt, like health and reflection)"
        )
    return identity


def call_scope() -> str:
    """"/pkg.Service/Method role:subject " of the RPC being served, "" outside one.

    A prefix for keys that a caller chooses (request ids): one caller's ids never meet
    another's, nor one RPC's another's, so a replayed id answers only what it first asked.
    """
    return _CALL.get()


def require_role(*roles: Role, action: str) -> Identity:
    """Return the caller's identity if its role is one of ``roles``, else raise.

    Raises ``PermissionDeniedError`` (message names the caller's role and ``action``). Raised
    inside a servicer wrapped by ``IdentityInterceptor`` it becomes PERMISSION_DENIED by itself.
    """
    identity = _IDENTITY.get()
    allowed = ", ".join(roles) or "(none)"
    if identity is None:
        raise PermissionDeniedError(
            f"unauthenticated caller may not {action} (requires role {allowed})",
            action=action,
            identity=None,
        )
    if identity.role not in roles:
        raise PermissionDeniedError(
            f"role {identity.role!r} ({identity.subject}) may not {action} "
            f"(requires role {allowed})",
            action=action,
            identity=identity,
        )
    return identity


async def abort_denied(context: Any, err: PermissionDeniedError) -> NoReturn:
    """End the RPC with PERMISSION_DENIED and the error's message (always raises)."""
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, clip(str(err)))
    raise AssertionError("grpc.aio context.abort() returned")  # pragma: no cover


# --- the interceptor -------------------------------------------------------------------------

Behavior = Callable[..., Any]

#: Why ``identity`` may not call the full method name, or None to admit it (the table in
#: ``evalgrid.authorization``; ``start_server`` passes ``authorization.denial``).
Authorizer = Callable[[Identity, str], str | None]


@dataclass(frozen=True)
class _Door:
    """What the interceptor checks for a call before the servicer runs, after the identity."""

    roles: frozenset[Role] | None
    authorize: Authorizer | None
    buckets: TokenBuckets | None


def _check_door(identity: Identity, method: str, door: _Door) -> None:
    """Rate limit first (refused calls spend tokens too), then the authorization table."""
    if door.buckets is not None:
        budget = f" {method}" if method in OWN_BUDGET else ""
        wait_s = door.buckets.take(f"{identity.role}:{identity.subject}{budget}")
        if wait_s > 0:
            log.warning("rate-limited %s from %s", method, identity)
            raise RateLimitedError(
                f"{identity.role} {identity.subject!r}: too many calls, retry in {wait_s:.2f} s")
    if door.authorize is not None:
        reason = door.authorize(identity, method)
        if reason is not None:
            log.warning("refused %s from %s: %s", method, identity, reason)
            raise PermissionDeniedError(reason, action=f"call {method}", identity=identity)


class IdentityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticate every call from its peer certificate before the servicer runs.

    grpc.aio interceptors see only the method name, not the servicer context, so the check is
    done by wrapping the method handler. Each wrapper keeps the kind grpc dispatches on (async
    function, async generator, or sync function/generator run in the migration thread pool), so
    every existing servicer style keeps working. Exempt methods (health, reflection) pass through
    untouched. With ``allowed_roles``, other roles are refused at the door (PERMISSION_DENIED);
    with ``authorize`` (the authorization table), so is every call its row does not admit; with
    ``rate_limit``, a certificate over its budget gets RESOURCE_EXHAUSTED.
    """

    def __init__(
        self,
        *,
        allowed_roles: Collection[Role] | None = None,
        exempt_prefixes: Sequence[str] = EXEMPT_METHOD_PREFIXES,
        authorize: Authorizer | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self._allowed = None if allowed_roles is None else frozenset(allowed_roles)
        self._exempt = tuple(exempt_prefixes)
        self._authorize = authorize
        self._buckets = None if rate_limit is None else TokenBuckets(rate_limit)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:
            return handler
        if method.startswith(self._exempt):  # no identity needed, but decoded the same way
            return _wrap_handler(handler, method, _nobody)
        door = _Door(self._allowed, self._authorize, self._buckets)
        return _wrap_handler(handler, method, functools.partial(_admit, method=method,
                                                                allowed=door))


def _nobody(context: Any) -> None:
    """The admission of a call that needs no identity (health, reflection)."""
    return None


class SourceLimitInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """For a port without client certificates (the enrolment port): a token bucket per source
    address, and one for the port as a whole, checked before a byte of the request is decoded.

    No flood from anywhere can make the port relay more than ``total`` allows, so the site's
    own calls to the coordinator keep their budget.
    """

    def __init__(self, per_source: RateLimit, total: RateLimit) -> None:
        self._sources = TokenBuckets(per_source)
        self._total = TokenBuckets(total)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return _wrap_handler(handler, handler_call_details.method, self._admit)

    def _admit(self, context: Any) -> None:
        source = source_of(context.peer())
        wait_s = self._sources.take(source)
        if wait_s == 0.0:
            wait_s = self._total.take("")
        if wait_s > 0:
            raise RateLimitedError(f"too many calls from here, retry in {wait_s:.2f} s")
        return None


def source_of(peer: str) -> str:
    """"ipv4:10.0.0.7:51234" -> "ipv4:10.0.0.7" (the caller's address, not its port)."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, _port = rest.rpartition(":")
        return f"{kind}:{host}"
    return peer


_REFUSED = (UnauthenticatedError, PermissionDeniedError, RateLimitedError)


def _admit(context: Any, *, method: str, allowed: _Door) -> Identity:
    """Identity for the call or raise Unauthenticated/PermissionDenied/RateLimited."""
    try:
        identity = identity_from_context(context)
    except UnauthenticatedError as exc:
        log.warning("refused %s from %s: %s", method, context.peer(), exc)
        raise
    _check_door(identity, method, allowed)
    _CALL.set(f"{method} {identity.role}:{identity.subject} ")
    if allowed.roles is not None and identity.role not in allowed.roles:
        log.warning("refused %s from %s: role %s not served here", method, context.peer(), identity)
        raise PermissionDeniedError(
            f"role {identity.role!r} ({identity.subject}) may not call {method} on this server",
            action=f"call {method}",
            identity=identity,
        )
    return identity


async def _abort_for(context: Any, exc: Exception) -> NoReturn:
    if isinstance(exc, PermissionDeniedError):
        await abort_denied(context, exc)
    if isinstance(exc, RateLimitedError):
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, clip(str(exc)))
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, clip(str(exc)))
    raise AssertionError("grpc.aio context.abort() returned")  # pragma: no cover


def _abort_for_sync(context: Any, exc: Exception) -> NoReturn:
    code = (
        grpc.StatusCode.PERMISSION_DENIED
        if isinstance(exc, PermissionDeniedError)
        else grpc.StatusCode.RESOURCE_EXHAUSTED
        if isinstance(exc, RateLimitedError)
        else grpc.StatusCode.UNAUTHENTICATED
    )
    context.abort(code, clip(str(exc)))  # the sync-stack context raises
    raise AssertionError("grpc context.abort() returned")  # pragma: no cover


class InvalidRequestError(Exception):
    """The request bytes are not the RPC's message, or a unary call carried none
    (INVALID_ARGUMENT; the message names the message type first)."""


#: Requests of the wire contract (evalgrid.v1...) get their fields' formats checked.
WIRE_PACKAGE_PREFIX: Final = "evalgrid."

#: The server's own limit on a unary call (async servicers): a client with no deadline, or one
#: that never finishes sending, cannot hold a call open for ever. Longer than any client's.
SERVER_UNARY_DEADLINE_S: Final = 120.0

#: Concurrent streams one connection may hold open (each is a task and buffers on the server);
#: an agent holds one, a console a handful. Further calls wait on the client's side.
MAX_CONCURRENT_STREAMS: Final = 64

#: What every evalgrid server is started with: the shared options and the stream cap.
SERVER_OPTIONS: Final[tuple[tuple[str, int], ...]] = (
    *KEEPALIVE_OPTIONS,
    ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
)

#: Who is calling, or None for a call that needs no identity; raises one of ``_REFUSED``.
Admit = Callable[[Any], Identity | None]


@dataclass(frozen=True)
class _Decoder:
    """The handler's own deserializer, run by the wrapper once the caller is admitted."""

    decode: Callable[[bytes], Any] | None
    name: str

    @classmethod
    def of(cls, handler: Any, method: str) -> _Decoder:
        decode = handler.request_deserializer
        owner = getattr(decode, "__self__", None)
        name = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", None)
        return cls(decode, name if isinstance(name, str) else f"request of {method}")

    def __call__(self, raw: Any) -> Any:
        if self.decode is None:
            return raw
        try:
            message = self.decode(raw)
        except Exception as exc:  # DecodeError, bad UTF-8, anything a decoder raises on bytes
            log.info("undecodable %s (%d bytes): %s", self.name, len(raw or b""),
                     type(exc).__name__)
            raise InvalidRequestError(
                f"{self.name}: the request is not a valid encoding of this message "
                "(malformed, truncated, or a string that is not UTF-8)") from None
        if self.name.startswith(WIRE_PACKAGE_PREFIX):
            try:
                check_request(message)
            except RequestFieldError as exc:
                raise InvalidRequestError(str(exc)) from None
        return message

    def missing(self) -> InvalidRequestError:
        return InvalidRequestError(f"{self.name}: no request message "
                                   "(a unary request carries exactly one)")


async def _first_async(raw: AsyncIterator[Any], decode: _Decoder) -> Any:
    async for item in raw:
        return decode(item)
    raise decode.missing()


def _first_sync(raw: Iterator[Any], decode: _Decoder) -> Any:
    for item in raw:
        return decode(item)
    raise decode.missing()


async def _decoded_async(raw: AsyncIterator[Any], decode: _Decoder, context: Any
                         ) -> AsyncIterator[Any]:
    async for item in raw:
        try:
            message = decode(item)
        except InvalidRequestError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, clip(str(exc)))
        yield message


def _decoded_sync(raw: Iterator[Any], decode: _Decoder, context: Any) -> Iterator[Any]:
    for item in raw:
        try:
            message = decode(item)
        except InvalidRequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, clip(str(exc)))
        yield message


def _wrap_handler(handler: Any, method: str, admit: Admit) -> Any:
    """The handler with the caller checked before a byte of the request is decoded.

    The server is given no deserializer (requests arrive as bytes) and every request is read
    as a stream: the wrapper admits the caller, then decodes with the handler's own
    deserializer, so undecodable bytes get INVALID_ARGUMENT naming the message type, and a
    unary call that carries no message is answered instead of waiting for ever.
    """
    decode = _Decoder.of(handler, method)
    single = not handler.request_streaming
    kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
    if handler.response_streaming:
        behavior = handler.unary_stream if single else handler.stream_stream
        return grpc.stream_stream_rpc_method_handler(
            _wrap_streaming(behavior, admit, decode, single), **kwargs)
    behavior = handler.unary_unary if single else handler.stream_unary
    return grpc.stream_unary_rpc_method_handler(
        _wrap_unary(behavior, admit, decode, single), **kwargs)


def _is_async_unary(behavior: Behavior) -> bool:
    # The same test grpc.aio uses to pick the event loop over the thread pool.
    return (
        inspect.isawaitable(behavior)
        or inspect.iscoroutinefunction(behavior)
        or inspect.isasyncgenfunction(behavior)
    )


async def _request_async(raw: Any, decode: _Decoder, single: bool, context: Any) -> Any:
    return await _first_async(raw, decode) if single else _decoded_async(raw, decode, context)


def _request_sync(raw: Any, decode: _Decoder, single: bool, context: Any) -> Any:
    return _first_sync(raw, decode) if single else _decoded_sync(raw, decode, context)


def _wrap_unary(behavior: Behavior, admit: Admit, decode: _Decoder, single: bool) -> Behavior:
    """Wrap a unary-response behavior (unary-unary or stream-unary)."""
    if _is_async_unary(behavior):

        async def async_unary(raw: Any, context: Any) -> Any:
            try:
                identity = admit(context)
            except _REFUSED as exc:
                await _abort_for(context, exc)
            token = _IDENTITY.set(identity)
            limit = asyncio.timeout(SERVER_UNARY_DEADLINE_S)
            try:
                request = await _request_async(raw, decode, single, context)
                async with limit:
                    return await behavior(request, context)
            except InvalidRequestError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, clip(str(exc)))
            except PermissionDeniedError as exc:
                await abort_denied(context, exc)
            except TimeoutError:
                if not limit.expired():
                    raise
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                    f"the server's limit of {SERVER_UNARY_DEADLINE_S:.0f} s "
                                    "for one call has passed")
            finally:
                _IDENTITY.reset(token)

        return async_unary

    def sync_unary(raw: Any, context: Any) -> Any:
        try:
            identity = admit(context)
        except _REFUSED as exc:
            _abort_for_sync(context, exc)
        try:
            request = _request_sync(raw, decode, single, context)
        except InvalidRequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, clip(str(exc)))
        # Runs in a pool thread: give the behavior its own context holding the identity.
        ctx = contextvars.copy_context()
        ctx.run(_IDENTITY.set, identity)
        try:
            return ctx.run(behavior, request, context)
        except PermissionDeniedError as exc:
            _abort_for_sync(context, exc)

    return sync_unary


def _wrap_streaming(behavior: Behavior, admit: Admit, decode: _Decoder, single: bool
                    ) -> Behavior:
    """Wrap a streaming-response behavior (unary-stream or stream-stream)."""
    if inspect.iscoroutinefunction(behavior):
        # Reader/writer style: the behavior calls context.write() and returns None.
        async def async_writer(raw: Any, context: Any) -> None:
            try:
                identity = admit(context)
            except _REFUSED as exc:
                await _abort_for(context, exc)
            token = _IDENTITY.set(identity)
            try:
                request = await _request_async(raw, decode, single, context)
                await behavior(request, context)
            except InvalidRequestError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, clip(str(exc)))
            except PermissionDeniedError as exc:
                await abort_denied(context, exc)
            finally:
                _IDENTITY.reset(token)

        return async_writer

    if inspect.isasyncgenfunction(behavior):

        async def async_gen(raw: Any, context: Any) -> AsyncIterator[Any]:
            try:
                identity = admit(context)
            except _REFUSED as exc:
                await _abort_for(context, exc)
            # Not reset afterwards: an async generator may be finalised from another context,
            # where reset() would fail; grpc.aio gives each RPC a fresh context anyway.
            _IDENTITY.set(identity)
            try:
                request = await _request_async(raw, decode, single, context)
                async for item in behavior(request, context):
                    yield item
            except InvalidRequestError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, clip(str(exc)))
            except PermissionDeniedError as exc:
                await abort_denied(context, exc)

        return async_gen

    def sync_gen(raw: Any, context: Any) -> Iterator[Any]:
        try:
            identity = admit(context)
        except _REFUSED as exc:
            _abort_for_sync(context, exc)
        try:
            request = _request_sync(raw, decode, single, context)
        except InvalidRequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, clip(str(exc)))
        # Each next() may run on a different pool thread: step the behavior inside one context.
        ctx = contextvars.copy_context()
        ctx.run(_IDENTITY.set, identity)
        done = object()
        try:
            iterator = iter(ctx.run(behavior, request, context))
            while (item := ctx.run(next, iterator, done)) is not done:
                yield item
        except PermissionDeniedError as exc:
            _abort_for_sync(context, exc)

    return sync_gen
