"""Trees that keep comments and processing instructions inside the root, for tests of the
stages' own defences.

``gateway.xmlio.parse`` refuses such markup inside a message (it would split values), so no
request reaches the signature checks or the rules with it; those stages must still be right
for such trees (defence in depth, and trees built by code), and their tests build them here.
Test data only: otherwise the same parser settings as the hardened parser.
"""

from __future__ import annotations

from lxml import etree

from gateway.catalog import Identified
from gateway.catalog import load as load_catalog
from gateway.errors import ParseError
from gateway.xmlio import Parsed, parse


def parse_keeping_markup(data: bytes, source: str = "-") -> Parsed:
    """``data`` as the hardened parser reads it, except that comments and PIs inside the root
    are kept (any other refusal still raises its ParseError)."""
    try:
        return parse(data, source=source)
    except ParseError as exc:
        if exc.code not in ("CEBGW-PARSE-COMMENT", "CEBGW-PARSE-PI"):
            raise
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             collect_ids=False)
    return Parsed(data, etree.fromstring(data, parser), source)


def identified_keeping_markup(data: bytes) -> Identified:
    """:func:`parse_keeping_markup`, identified by the catalogue (as the pipeline hands it on)."""
    return load_catalog().identify(parse_keeping_markup(data))
