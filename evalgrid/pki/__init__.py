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

Import from the submodule (this package re-exports nothing, `tests/test_layering.py`
checks).
"""
