"""Document lifecycle (spec §7 ``appType``; issue 11 part 1): what customs enforces, enforced first.

``appType`` 1 declares a document, 2 changes it, 3 deletes it.  Per record of a declaration,
against the same enterprise's (tenant's) earlier versions of the same business keys:

* a second appType 1 of keys already declared (and not rejected) is refused
  (``CEBGW-LIFECYCLE-DUPLICATE``; customs answers -301010 / -621004);
* a version of an inventory list the pre-flight comparison held back and customs never got does
  not count: the corrected list is declared anew (appType 1), and a change of it is refused;
* a change or deletion needs a declared version (``CEBGW-LIFECYCLE-NO-ORIGINAL``) that customs
  has not yet accepted into its database, status 120 or later (``CEBGW-LIFECYCLE-ACCEPTED``):
  after that an inventory list can only be cancelled (CEB623) or returned (CEB625);
* a cancellation (CEB623) or return (CEB625) must name an inventory list of the same tenant by
  the ``invtNo`` customs assigned it (``CEBGW-LIFECYCLE-INVTNO``); a return's lines must be lines
  of that list, each quantity at most the declared one (``CEBGW-LIFECYCLE-RETURN-LINE``).

The same bytes again are not refused here: the store answers them as a duplicate.  The checks
cover the parcel documents of both flows (``TYPES``): the import parcel's
documents and the export ones (order, collection, waybill, inventory list, arrival and
departure reports, load list, summary application), and the cancellations and returns of an
inventory list of either flow (``LIST_OF``).  Receipts and customs-issued messages pass.

Where they run: the version checks (duplicate, no original, accepted) as the store's guard in
the transaction that stores the declaration (:func:`guard`), so that what they read cannot
change before the declaration is stored; a cancellation's or return's checks before the store
(:func:`check`), since the inventory list it names is never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from lxml import etree

from .catalog import Catalog, Identified
from .errors import InputError, register
from .reconcile import documents_of
from .state import RANK, State
from .store import DeclarationRef, Guard, Store, Versions
from .xmlio import child, first_children, parse, text

register("CEBGW-LIFECYCLE-DUPLICATE", 409, 1, "-2999",
         "already declared by this enterprise: send a change (appType 2) instead",
         "该单证已由本企业申报，请以变更（appType=2）申报")
register("CEBGW-LIFECYCLE-NO-ORIGINAL", 409, 1, "-2999",
         "nothing declared to change or delete", "不存在可变更或删除的原申报")
register("CEBGW-LIFECYCLE-ACCEPTED", 409, 1, "-2999",
         "customs has accepted the document: it can no longer be changed or deleted",
         "海关已入库，不允许变更或删除")
register("CEBGW-LIFECYCLE-INVTNO", 422, 1, "-2999",
         "no inventory list of this enterprise with that invtNo", "本企业不存在该清单编号的清单")
register("CEBGW-LIFECYCLE-RETURN-LINE", 422, 1, "-2999",
         "a return line must be a line of the inventory list, its qty at most the declared qty",
         "退货商品须为原清单商品，退货数量不得超过原清单数量")


# The types whose lifecycle is checked: the import parcel's documents, cancellation and return.
# The inventory list a cancellation or return names by its invtNo.
LIST_OF = {"CEB623": "CEB621", "CEB625": "CEB621", "CEB605": "CEB603", "CEB213": "CEB603"}
# Returns whose lines are checked against the list's (the import return's lines carry gnum and qty).
RETURN_LINES = frozenset({"CEB625"})
TYPES = frozenset({"CEB311", "CEB411", "CEB511", "CEB621", "CEB303", "CEB403", "CEB505", "CEB507",
                   "CEB509", "CEB603", "CEB607", "CEB701", *LIST_OF})


class LifecycleError(InputError):
    """A declaration the document's lifecycle does not allow now."""

    code = "CEBGW-LIFECYCLE-DUPLICATE"


_AFTER_ACCEPTANCE = {
    "CEB621": "a declared inventory list can only be cancelled (CEB623) or returned (CEB625)",
    "CEB603": "a declared export inventory list can only be cancelled (CEB605) or returned (CEB213)"}


@dataclass(frozen=True)
class Record:
    """What the lifecycle needs of one record: its head fields (:data:`HEAD_FIELDS`), business
    keys and (CEB625) its return lines as (gnum, qty)."""

    head: dict[str, str]
    keys: dict[str, str]
    lines: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Facts:
    """What the lifecycle needs of one declaration, read from the tree the validate stage read
    (so the async check needs no tree): its type, root guid and records."""

    code: str
    guid: str
    records: tuple[Record, ...]


# The head fields the checks read: the version's kind, the parcel it belongs to, the list it names.
HEAD_FIELDS = ("appType", "invtNo", "orderNo", "ebpCode")


def _head(rec: etree._Element, ident: Identified) -> dict[str, str]:
    mtype = ident.type
    el = child(rec, mtype.q(mtype.head)) if mtype.head else rec
    if el is None:
        return {}
    tags = [mtype.q(name) for name in HEAD_FIELDS]
    found = first_children(el, tags)
    return {name: text(found[tag]) for name, tag in zip(HEAD_FIELDS, tags, strict=True) if tag in found}


def facts_of(ident: Identified, keys_of: list[dict[str, str]] | None = None) -> Facts | None:
    """The lifecycle's view of a declaration, ``None`` for a type it does not check
    (``keys_of``: its records' business keys, if the caller has read them already)."""
    mtype = ident.type
    if mtype.code not in TYPES or not mtype.record:
        return None
    if keys_of is None:
        keys_of = mtype.business_keys(ident.root)
    returns = mtype.code in RETURN_LINES  # only return lines are checked line by line
    records = []
    for no, rec in enumerate(ident.root.iterchildren(mtype.q(mtype.record))):
        keys = {k: keys_of[no][k] for k in mtype.keys if no < len(keys_of) and k in keys_of[no]}
        lines = tuple((text(ln.find(mtype.q("gnum"))), text(ln.find(mtype.q("qty"))))
                      for ln in rec.iterchildren(mtype.q(mtype.lines))) if mtype.lines and returns else ()
        records.append(Record(_head(rec, ident), keys, lines))
    return Facts(mtype.code, ident.root.get("guid", ""), tuple(records))


def guard(facts: Facts, tenant: str, catalog: Catalog) -> Guard | None:
    """The version checks of the declaration ``facts`` describes (of ``tenant``, validated), for
    the store to run in the transaction that stores it (:attr:`~gateway.store.NewMessage.guard`):
    judged there, two declarations of the same keys in flight at once cannot both pass as new,
    nor a change pass while customs' acceptance of what it changes is being stored.  ``None``
    when there is nothing to check (a cancellation or return: :func:`check`; keys incomplete).
    The guard raises :class:`LifecycleError` naming the record and the keys."""
    if facts.code in LIST_OF:
        return None
    mtype = catalog[facts.code]
    records = [(no, rec) for no, rec in enumerate(facts.records)
               if mtype.keys and len(rec.keys) == len(mtype.keys)]
    if not records:
        return None  # keys incomplete: nothing to compare versions by

    def check_versions(versions: Versions) -> None:
        for no, rec in records:
            found = [r for r in versions.declarations(facts.code, rec.keys)
                     if r.tenant == tenant and r.guid != facts.guid]
            withdrawn = _held_back(facts.code, rec.head, versions) if found else set()
            _check_versions(rec.head.get("appType", ""), found, rec.keys, f"{facts.code} record {no + 1}",
                            facts.code, withdrawn)

    return check_versions


async def check(facts: Facts, tenant: str, store: Store, catalog: Catalog) -> None:
    """Refuse the cancellation or return ``facts`` describes (of ``tenant``, validated) if it does
    not name an inventory list of ``tenant``, or (a return) returns what the list does not hold.
    Raises :class:`LifecycleError` naming the record.  The other types' checks are :func:`guard`'s."""
    if facts.code not in LIST_OF:
        return
    for no, rec in enumerate(facts.records):
        await _check_invt(facts.code, rec, tenant, store, catalog, f"{facts.code} record {no + 1}")


def _held_back(code: str, head: dict[str, str], versions: Versions) -> set[int]:
    """The versions of this inventory list the pre-flight comparison held back and customs never
    got: a corrected list replaces them with a new declaration (appType 1), not a change."""
    if code != "CEB621" or not head.get("orderNo"):
        return set()
    found = versions.parcel_versions(head.get("ebpCode", ""), head["orderNo"])
    return {v.message_id for v in found if v.message_type == code and v.held and not v.sent}


def _check_versions(app_type: str, found: list[DeclarationRef], keys: dict[str, str], where: str,
                    code: str, withdrawn: set[int]) -> None:
    live = [r for r in found if r.state != State.REJECTED and r.message_id not in withdrawn]
    if app_type not in ("1", "2", "3"):
        return  # an empty appType (the schema allows empty content): nothing to judge by
    if app_type == "1":
        if live:
            raise LifecycleError(f"{where}: {keys} already declared by this enterprise (message "
                                 f"{live[0].message_id}, {live[0].state.value}); send a change (appType 2)"
                                 " instead",
                                 code="CEBGW-LIFECYCLE-DUPLICATE", field="appType")
        return
    verb = "change" if app_type == "2" else "delete"
    if not live:
        held = any(r.message_id in withdrawn for r in found)
        why = ("was held back by the pre-flight comparison and never sent to customs" if held
               else "this enterprise has not declared (or customs rejected)")
        raise LifecycleError(f"{where}: appType {app_type} ({verb}) of {keys}, which {why}; declare it with"
                             " appType 1", code="CEBGW-LIFECYCLE-NO-ORIGINAL", field="appType")
    accepted = [r for r in live if RANK[r.state] >= RANK[State.ACCEPTED]]
    if accepted:
        then = _AFTER_ACCEPTANCE.get(code, "it can no longer be changed or deleted")
        raise LifecycleError(f"{where}: customs has accepted {keys} (message {accepted[0].message_id},"
                             f" {accepted[0].state.value}): {then}",
                             code="CEBGW-LIFECYCLE-ACCEPTED", field="appType")


async def _check_invt(code: str, rec: Record, tenant: str, store: Store, catalog: Catalog,
                      where: str) -> None:
    invt_no = rec.head.get("invtNo", "")
    found = [r for r in await store.find_declarations(LIST_OF[code], {"invtNo": invt_no})
             if r.tenant == tenant] if invt_no else []
    if not found:
        raise LifecycleError(f"{where}: no inventory list of this enterprise has invtNo {invt_no!r}",
                             code="CEBGW-LIFECYCLE-INVTNO", field="invtNo")
    if code not in RETURN_LINES:
        return
    ref = found[0]
    stored = await store.get_message(ref.message_id, tenant)
    if stored is None:  # pragma: no cover - found a moment ago, declarations are never deleted
        raise LifecycleError(f"{where}: inventory list {ref.message_id} is gone",
                             code="CEBGW-LIFECYCLE-INVTNO")
    stored_ident = catalog.identify(parse(stored.data, source="stored inventory list"))
    inventory = documents_of(stored_ident)[ref.record_no]
    declared = {ln.get("gnum", ""): ln.get("qty", "") for ln in inventory.lines}
    for gnum, qty in rec.lines:
        if gnum not in declared:
            raise LifecycleError(f"{where}: return line gnum {gnum} is not a line of inventory list"
                                 f" {invt_no}", code="CEBGW-LIFECYCLE-RETURN-LINE", field="gnum")
        try:
            over = Decimal(qty) > Decimal(declared[gnum])
        except InvalidOperation:
            over = True
        if over:
            raise LifecycleError(f"{where}: return line gnum {gnum} qty {qty} exceeds the declared "
                                 f"{declared[gnum]} of inventory list {invt_no}",
                                 code="CEBGW-LIFECYCLE-RETURN-LINE", field="qty")
