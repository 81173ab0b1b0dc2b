"""`evalgrid pki`: the provincial CA, certificates and their revocation."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.options import CliError, add_data_dir, data_dir


def cmd_pki_init(args: argparse.Namespace) -> int:
    from evalgrid.pki.ca import init_ca
    from evalgrid.pki.identity import PkiError

    pki_dir = data_dir(args) / "pki"
    try:
        path = init_ca(pki_dir, force=args.force)
    except PkiError as exc:
        raise CliError(str(exc)) from exc
    print(f"provincial CA created: {path}")
    return 0


def cmd_pki_issue(args: argparse.Namespace) -> int:
    from evalgrid.pki.ca import issue
    from evalgrid.pki.identity import PkiError

    subject = args.id or ("coordinator" if args.role == "coordinator" else "")
    if not subject:
        raise CliError(f"pki issue {args.role}: an id is required")
    hosts = tuple(args.host) if args.host else ("localhost", "127.0.0.1", "::1")
    try:
        issued = issue(data_dir(args) / "pki", args.role, subject, hosts=hosts)
    except PkiError as exc:
        raise CliError(str(exc)) from exc
    print(f"issued {issued.identity}: {issued.cert_path} (key {issued.key_path})")
    return 0


def cmd_pki_revoke(args: argparse.Namespace) -> int:
    from evalgrid.pki.crl import revoke
    from evalgrid.pki.identity import Identity, PkiError, validate_subject

    identity = None
    serial = None
    if args.serial:
        if args.role or args.id:
            raise CliError("pki revoke: give an identity or --serial, not both")
        try:
            serial = int(args.serial.removeprefix("0x"), 16)
        except ValueError as exc:
            raise CliError(f"--serial: not a hexadecimal serial number: {args.serial!r}") from exc
    else:
        subject = args.id or ("coordinator" if args.role == "coordinator" else "")
        if not args.role or not subject:
            raise CliError("pki revoke: give ROLE ID (e.g. operator alice, workstation "
                           "S0001/W-01) or --serial HEX")
        try:
            identity = Identity(validate_subject(args.role, subject), subject)
        except PkiError as exc:
            raise CliError(str(exc)) from exc
    done = revoke(data_dir(args) / "pki", identity=identity, serial=serial, reason=args.reason)
    what = str(identity) if identity is not None else f"serial {serial:x}"
    listed = ", ".join(f"{s:x}" for s in done.serials) or "none new"
    print(f"revoked {what} ({args.reason}): {len(done.serials)} certificate(s) newly listed "
          f"[{listed}]; CRL #{done.crl_number} written to {done.crl_path}")
    print("the coordinator applies it within a second, audits it and sends it to the agents")
    return 0


def register(sub: Any) -> None:
    """`pki init|issue|revoke`."""
    pki = sub.add_parser("pki", help="the provincial CA and certificates")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    p = pki_sub.add_parser("init", help="create the provincial CA")
    add_data_dir(p)
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    p.set_defaults(func=cmd_pki_init)
    p = pki_sub.add_parser("issue", help="issue a certificate")
    add_data_dir(p)
    p.add_argument("role", choices=["coordinator", "site", "operator", "auditor", "workstation"],
                   help="what the certificate is for")
    p.add_argument("id", nargs="?", help="site id, operator name, or SITE/WORKSTATION")
    p.add_argument("--host", action="append", help="a host name or IP the server answers on")
    p.set_defaults(func=cmd_pki_issue)
    p = pki_sub.add_parser("revoke", help="revoke a party's certificates (CA-signed CRL)")
    add_data_dir(p)
    p.add_argument("role", nargs="?",
                   choices=["coordinator", "site", "operator", "auditor", "workstation"],
                   help="whose certificates")
    p.add_argument("id", nargs="?", help="site id, operator name, or SITE/WORKSTATION")
    p.add_argument("--serial", help="revoke one certificate by its serial (hex)")
    p.add_argument("--reason", default="unspecified",
                   choices=["unspecified", "key_compromise", "affiliation_changed",
                            "superseded", "cessation_of_operation"],
                   help="the CRL reason code")
    p.set_defaults(func=cmd_pki_revoke)
