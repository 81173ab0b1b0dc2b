"""What every command group shares: the user error, the common options, where a process of
the data dir is, the province's clock and the verifier's pinned key."""

from __future__ import annotations

import argparse
from datetime import date, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalgrid.trust import PinnedTrust


DEFAULT_DATA_DIR = Path("data-dir")
REDIS_URL_HELP = ("the coordinator's Redis, redis://... (default: the private one under "
                  "DATA_DIR)")


class DefaultsShown(argparse.HelpFormatter):
    """Help that states each option's default, unless it has none or the text says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and (action.option_strings or action.nargs in ("?", "*"))):
            text += " (default: %(default)s)"
        return text


def shows_defaults(parser: argparse.ArgumentParser) -> None:
    """Give every parser of the tree the formatter that states defaults."""
    parser.formatter_class = DefaultsShown
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                shows_defaults(child)


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that describe bad input or a missing file: a message, never a traceback."""
    from coordinator.domain.rules import RulesError
    from coordinator.notifier import NotifierConfigError
    from coordinator.offline import OfflineError
    from coordinator.store.embedded_redis import EmbeddedRedisError
    from coordinator.store.keys import KeyFileError
    from evalgrid.pki.identity import PkiError
    from evalgrid.trust import TrustError

    return (OfflineError, KeyFileError, PkiError, RulesError, EmbeddedRedisError,
            NotifierConfigError, TrustError)


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).resolve()


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                        help="where the grid keeps all its state")


def add_redis_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-server", metavar="PATH",
        help="the Redis or Valkey server binary to run on the data dir (Redis 6.2-7.x, "
        "Valkey 7.2-9.x; default: $EVALGRID_REDIS_SERVER, else the one that last ran the data "
        "dir, else the bundled Valkey)")


def target_address(given: str | None, port_file: Path, option: str) -> str:
    """The address given, else the loopback port a process of this data dir wrote down."""
    if given:
        return given
    if port_file.exists() and port_file.read_text().strip():
        return f"127.0.0.1:{port_file.read_text().strip()}"
    raise CliError(f"{option} HOST:PORT is needed ({port_file} does not exist)")


def coordinator_address(given: str | None, data: Path) -> str:
    """--coordinator, else the port the coordinator of this data dir wrote down, else the
    coordinator's default address."""
    if given:
        return given
    port_file = data / "coordinator.port"
    return target_address(None, port_file, "--coordinator") if port_file.exists() \
        else "127.0.0.1:50051"


def check_certificate(pki_dir: Path, role: str, subject: str) -> None:
    from evalgrid.pki.directory import load_identity_files
    from evalgrid.pki.identity import PkiError

    try:
        load_identity_files(pki_dir, role, subject)
    except PkiError as exc:
        raise CliError(str(exc)) from exc


def only_certificate(pki_dir: Path, role: str, option: str) -> str:
    """The subject of the one certificate of `role` in this data dir; else ask for it."""
    found = sorted(p.stem for p in (pki_dir / role).glob("*.pem"))
    if len(found) != 1:
        raise CliError(f"{option} NAME is needed ({len(found)} {role} certificate(s) in "
                       f"{pki_dir / role})")
    return found[0]


def province_tz() -> tzinfo:
    """The province's local time, from the rules (`local_utc_offset_minutes`)."""
    from coordinator.domain.rules import load_rules

    return timezone(timedelta(minutes=load_rules().local_utc_offset_minutes))


def iso_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: a date YYYY-MM-DD, not {value!r}") from None


def add_trust(parser: argparse.ArgumentParser) -> None:
    """Where a verifier takes the coordinator's key from: never from the file it checks."""
    group = parser.add_argument_group(
        "pinned key", "the coordinator's signing key, from one of these (default: the data "
        "dir's own key); the key a file names is believed only if it agrees")
    group.add_argument("--key", metavar="FILE", help="the coordinator's public key (PEM)")
    group.add_argument("--fingerprint", metavar="HEX",
                       help="SHA-256 of the coordinator's raw public key")
    group.add_argument("--ca", metavar="FILE", help="the provincial CA (ca.pem): it certifies "
                       "the signing key (certificate of role signer, carried by the file or "
                       "given with --cert)")
    group.add_argument("--cert", metavar="FILE", help="with --ca: the signing certificate")
    add_data_dir(parser)


def pinned_trust(args: argparse.Namespace) -> PinnedTrust:
    from evalgrid.trust import PinnedTrust

    chosen = [name for name in ("key", "fingerprint", "ca") if getattr(args, name)]
    if len(chosen) > 1:
        raise CliError(f"pin one key: --{chosen[0]} and --{chosen[1]} both given")
    if args.cert and not args.ca:
        raise CliError("--cert needs --ca: a certificate is believed only if the CA signed it")
    if args.key:
        return PinnedTrust.from_key_file(Path(args.key))
    if args.fingerprint:
        return PinnedTrust.from_fingerprint(args.fingerprint)
    if args.ca:
        return PinnedTrust.from_ca(Path(args.ca), Path(args.cert) if args.cert else None)
    return PinnedTrust.from_data_dir(data_dir(args))
