"""The footer's key words in the console's language.

Textual copies a class's BINDINGS into each node when it is built; the descriptions there are
English catalogue keys (marked with `N_`), translated here once per node.
"""

from __future__ import annotations

from dataclasses import replace

from textual.dom import DOMNode

from evalgrid.i18n import _


def translate_footer(node: DOMNode) -> None:
    table = node._bindings.key_to_bindings
    for key, bindings in table.items():
        table[key] = [replace(b, description=_(b.description)) if b.description else b
                      for b in bindings]
