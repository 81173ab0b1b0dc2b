"""Terminal consoles (Textual) for site staff and coordinator operators.

They are clients only: each talks gRPC over mutual TLS through a small client interface
(`SiteClient`, `OperatorClient`), so tests drive the screens with a fake. Nothing but the CLI
(and the demo) imports this package.
"""
