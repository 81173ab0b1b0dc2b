"""The provincial PKI: one CA, and leaf certificates that carry who the holder is.

Every party in the grid (coordinator, site agents, workstations, operators, auditors) proves who
it is with a certificate from one provincial CA; the servers read the identity from the verified
peer certificate, never from a request field. The certificates are made and read with the
``cryptography`` library (no ``openssl`` subprocess, so it runs the same everywhere). One module
per idea, each importing only those above it:

- `identity`: who a party is (role and id) and reading it from a certificate;
- `directory`: the PKI directory on disk and loading a party's key material;
- `ca`: the CA, issuing certificates (keys made here or on the device) and its record;
- `crl`: the revocation list;
- `signer`: the certificate of the coordinator's signing key.

Import from the submodule; the names below are re-exported for callers not yet moved.
"""

from evalgrid.pki.ca import (
    DEFAULT_HOSTS,
    IssuedCert,
    init_ca,
    issue,
    issue_from_csr,
    issued_serials,
    make_csr,
    serial_of_pem,
)
from evalgrid.pki.crl import (
    REVOCATION_REASONS,
    Revoked,
    revoke,
)
from evalgrid.pki.directory import (
    CA_CERT_NAME,
    CA_KEY_NAME,
    CRL_NAME,
    ISSUED_INDEX,
    IdentityFiles,
    ca_paths,
    load_identity_files,
    paths_for,
)
from evalgrid.pki.identity import (
    ORGANIZATION,
    ROLES,
    URI_SCHEME,
    Identity,
    PkiError,
    Role,
    identity_from_pem,
    is_role,
    validate_subject,
)
from evalgrid.pki.signer import (
    SIGNER_EKU,
    SIGNER_ROLE,
    certify_signing_key,
    ensure_signing_certificate,
    key_fingerprint,
    signer_cert_path,
    signing_key_from_certificate,
)

__all__ = [
    "CA_CERT_NAME",
    "CA_KEY_NAME",
    "CRL_NAME",
    "DEFAULT_HOSTS",
    "ISSUED_INDEX",
    "ORGANIZATION",
    "REVOCATION_REASONS",
    "ROLES",
    "SIGNER_EKU",
    "SIGNER_ROLE",
    "URI_SCHEME",
    "Identity",
    "IdentityFiles",
    "IssuedCert",
    "PkiError",
    "Revoked",
    "Role",
    "ca_paths",
    "certify_signing_key",
    "ensure_signing_certificate",
    "identity_from_pem",
    "init_ca",
    "is_role",
    "issue",
    "issue_from_csr",
    "issued_serials",
    "key_fingerprint",
    "load_identity_files",
    "make_csr",
    "paths_for",
    "revoke",
    "serial_of_pem",
    "signer_cert_path",
    "signing_key_from_certificate",
    "validate_subject",
]
