"""Write the first version of a mapping file per message type and edition (``--force`` rewrites).

The mappings are data an analyst edits afterwards; this script only does the mechanical part:
the defaults every declaration takes, the date and code conversions by field name, and who
signs.  Run from the repository root: ``.venv/bin/python mappings/generate.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gateway.catalog import load
from gateway.mapping.model import Leaf, Record, model

HERE = Path(__file__).resolve().parent
TIMES = {"appTime": "datetime14", "accountingDate": "datetime14", "endTime": "datetime14",
         "startTime": "datetime14", "leaveTime": "datetime14", "logisticsTime": "datetime14",
         "payTime": "datetime14", "declTime": "date8", "ieDate": "date8", "returnTime": "datetime17",
         "opDate": "datetime17"}
CURRENCIES = ("currency", "fCurrency", "iCurrency")
HEAD_DEFAULTS = {"guid": "{uuid}", "appType": "1", "appTime": "{now}", "appStatus": "2"}


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(code: str, edition: str) -> str:
    cat = load()
    t = cat.types[code]
    m = model(t, edition)
    defaults: list[tuple[str, str]] = [("@guid", "{uuid}"), ("@version", "1.0")]
    convert: list[tuple[str, str]] = []

    def walk(r: Record) -> None:
        leaves = {c.name for c in r.children if isinstance(c, Leaf)}
        for c in r.children:
            if isinstance(c, Record):
                walk(c)
                continue
            key = f"{r.name}.{c.name}"
            if c.name in TIMES:
                convert.append((key, TIMES[c.name]))
            if c.name in CURRENCIES:
                convert.append((key, "currency"))
            if t.kind != "declaration":
                continue
            if "appType" in leaves and c.name in HEAD_DEFAULTS:
                defaults.append((key, HEAD_DEFAULTS[c.name]))
            if c.name == "currency" and t.flow == "import":
                defaults.append((key, "142"))
        if t.kind == "declaration" and r.name == "BaseTransfer":
            defaults.extend([("BaseTransfer.copCode", "{account.code}"), ("BaseTransfer.dxpMode", "DXP"),
                             ("BaseTransfer.dxpId", "{account.dxp_id}")])
        if t.kind == "declaration" and r.name == "BaseSubscribe":
            defaults.append(("BaseSubscribe.dxpMode", "DXP"))
    walk(m.body)
    if t.kind == "declaration":
        who = " or ".join(t.sender)
        need = {"required": "must be signed", "optional": "may be signed",
                "when_declared": "must be signed when appStatus is 2"}.get(t.signature, "")
        signed_by = f"the {who} named in BaseTransfer/copCode ({need})"
    else:
        signed_by = "customs (receipts are not signed by enterprises)"
    lines = [f"# {code} {t.title}, edition {edition}: how enterprise JSON maps to the CEB XML.",
             "# JSON names are the standard's field names (records in lowerCamel: OrderHead -> orderHead);",
             "# see mappings/README.md.  Keys below are Record.field, or @attribute of the root.",
             f"message_type = {_q(code)}", f"edition = {_q(edition)}", f"title = {_q(t.title)}",
             f"signed_by = {_q(signed_by)}", "",
             "# filled in when the JSON leaves the field out",
             "[defaults]"]
    lines += [f"{_q(k)} = {_q(v)}" for k, v in defaults]
    lines += ["", "# datetime14: yyyyMMddHHmmss, or ISO 8601 (converted to Beijing time; no zone = Beijing)",
              "# datetime17: yyyyMMddHHmmssSSS; date8: yyyyMMdd or an ISO date;"
              " currency: CNY -> 142 (codes.toml)",
              "[convert]"]
    lines += [f"{_q(k)} = {_q(v)}" for k, v in convert]
    lines += ["", "# names a deployment accepts beside the standard one, e.g. \"OrderHead.buyerTelephone\" = "
              "[\"buyer_phone\"]", "[aliases]", ""]
    return "\n".join(lines)


def descriptions(spec_md: Path) -> str:
    """``descriptions.toml`` from the field dictionary (§6) of the shared spec: one English
    meaning per field name."""
    text = spec_md.read_text(encoding="utf-8")
    start = text.index("## 6. Field dictionary")
    end = text.index("\n## 7.", start)
    rows: dict[str, str] = {}
    for line in text[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Za-z0-9]+)`", cells[0])
        # a row for several fields ("unit / unit1 / unit2") keeps its meanings together, named
        meaning = cells[1] if len(names) == 1 else f"{' / '.join(names)}: {cells[1]}"
        for name in names:
            rows.setdefault(name, meaning.replace("`", ""))
    out = ["# What each field means, from the field dictionary of the CEB standard (shared spec, section 6);",
           "# written by mappings/generate.py --descriptions SPEC.md.",
           "# en: English; zh: the Chinese terms it gives.", ""]
    for name, meaning in sorted(rows.items()):
        zh = "、".join(re.findall(r"[\u4e00-\u9fff]+", meaning))
        out.append(f"[{name}]\nen = {_q(meaning)}" + (f"\nzh = {_q(zh)}" if zh else "") + "\n")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if "--descriptions" in argv:
        spec_md = Path(argv[argv.index("--descriptions") + 1])
        (HERE / "descriptions.toml").write_text(descriptions(spec_md), encoding="utf-8")
        print(f"wrote {HERE / 'descriptions.toml'}")
        return 0
    force = "--force" in argv
    cat = load()
    written = 0
    for code, t in sorted(cat.types.items()):
        if t.is_envelope:
            continue
        for edition in t.editions:
            path = HERE / f"{code}.{edition}.toml"
            if path.exists() and not force:
                continue
            path.write_text(render(code, edition), encoding="utf-8")
            written += 1
    print(f"{written} mapping file(s) written to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
