"""The catalogue: every message type of spec §2 is there, with consistent pairs."""

from __future__ import annotations

from gateway.catalog import CEB_NS, DXP_NS, load

IMPORT = {311, 312, 411, 412, 511, 512, 513, 514, 621, 622, 623, 624, 625, 626, 711, 712, 816, 818, 900}
EXPORT = {303, 304, 403, 404, 505, 506, 507, 508, 509, 510, 603, 604, 605, 606, 607, 608, 701, 702, 792,
          213, 214, 215, 216}


def test_every_type_is_catalogued() -> None:
    cat = load()
    codes = set(cat.types)
    assert {f"CEB{n}" for n in IMPORT | EXPORT} | {"DxpMsg", "DxpMsgSv", "DxpRep"} == codes
    for n in IMPORT:
        assert cat[f"CEB{n}"].flow == "import"
    for n in EXPORT:
        assert cat[f"CEB{n}"].flow == "export"


def test_declarations_and_receipts_pair_up() -> None:
    cat = load()
    for t in cat.declarations():
        assert t.receipt and cat[t.receipt].answers == t.code, t.code
        assert t.sender and t.keys and t.record
        assert t.namespace == CEB_NS
    for t in cat.receipts():
        assert t.answers == "*" or cat[t.answers].kind == "declaration", t.code


def test_signature_policy_follows_the_spec() -> None:
    cat = load()
    assert {t.code for t in cat if t.signature == "required"} == {"CEB621", "CEB623", "CEB625", "CEB711"}
    assert cat["CEB607"].signature == "when_declared"
    assert cat["DxpMsg"].namespace == DXP_NS
