"""What ``cebgw serve --sandbox`` prints once it listens: a shell script.

Every line runs as printed in a fresh shell started where the server was (``make run``:
the repository root): what describes the sandbox is a ``#`` comment, and the commands
name the ``cebgw`` of the running installation by its path (``.venv/bin/cebgw``), since a
fresh shell does not have the virtual environment on its PATH.  Paths under the working
directory are shown relative to it, others absolute.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ORDER = ROOT / "samples" / "valid" / "CEB311.xml"       # unsigned: an order needs no signature
INVENTORY = ROOT / "samples" / "valid" / "CEB621.xml"   # signed with certs/sandbox/ecommerce-rsa


def shown(path: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """``path`` relative to ``cwd`` (default: the working directory) when under it, else absolute."""
    p = Path(path).resolve()
    here = (cwd or Path.cwd()).resolve()
    return str(p.relative_to(here)) if p.is_relative_to(here) else str(p)


def cebgw_command(cwd: Path | None = None) -> str:
    """How a fresh shell in ``cwd`` runs this installation's ``cebgw``: the script beside the
    running interpreter (a virtual environment's bin/), else the one on PATH, else ``python -m``."""
    beside = Path(sys.executable).parent / "cebgw"
    if beside.is_file() and os.access(beside, os.X_OK):
        text = shown(beside, cwd)
        return text if "/" in text else f"./{text}"
    found = shutil.which("cebgw")
    if found:
        return shlex.quote(str(Path(found).resolve()))
    return f"{shlex.quote(sys.executable)} -m gateway.cli.main"


def render(info: dict[str, Any], *, info_path: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """The banner for the sandbox described by ``info`` (``sandbox.json``'s contents)."""
    url, q = info["url"], shlex.quote
    accounts = {a["name"]: a for a in info["accounts"]}
    ecommerce, customs = accounts["ecommerce"], info["customs"]
    auth = q(f"Authorization: Bearer {ecommerce['token']}")
    cebgw = cebgw_command(cwd)
    certs = Path(customs["cert"]).parent
    lines = [
        f"# ceb-gateway sandbox listening on {url}",
        f"# sandbox details (tokens, keys): {shown(info_path, cwd)}",
        f"# keys, certificates and registry: {shown(certs, cwd)} (the samples are signed with them)",
    ]
    lines += [f"#   {a['name']:<14} codes={','.join(a['codes'])} token={a['token']}"
              for a in info["accounts"]]
    lines += [
        f"#   {'customs':<14} token={customs['token']}",
        "",
        "# Submit a sample order:",
        f"curl -sS --fail-with-body -w '\\n' -X POST {url}/v1/messages -H {auth} "
        f"-H 'Content-Type: application/xml' --data-binary @{q(shown(ORDER, cwd))}",
        "# and a signed inventory list, with the client command:",
        f"{cebgw} send {q(shown(INVENTORY, cwd))} --url {url} --token {ecommerce['token']}",
        "# Answer them as customs (the sandbox plays customs; signed receipts, statuses 2 and 120):",
        f"{cebgw} customs answer --url {url} --token {customs['token']} "
        f"--key {q(shown(customs['key'], cwd))} --cert {q(shown(customs['cert'], cwd))}",
        "# (or let customs decide for itself: the three-order comparison, channels, the export flow;"
        " --follow keeps it answering)",
        f"#   {cebgw} sandbox --url {url} --token {customs['token']} "
        f"--key {q(shown(customs['key'], cwd))} --cert {q(shown(customs['cert'], cwd))}",
        "# Then poll receipts:",
        f"curl -sS --fail-with-body -w '\\n' {q(f'{url}/v1/receipts?wait=20')} -H {auth}",
    ]
    key = f"--key {q(shown(customs['key'], cwd))} --cert {q(shown(customs['cert'], cwd))}"
    if "amqp" in info:
        a = info["amqp"]
        queues = list(a["customs_queues"].values())
        lines += [
            f"# Customs over AMQP: envelopes on {', '.join(queues)}, receipts to {a['receipts_queue']}"
            f" (refused ones in {a['dead_letter_queue']}):",
            f"{cebgw} customs answer --transport amqp --amqp {q(a['url'])} --queue {' '.join(map(q, queues))}"
            f" --receipts-queue {q(a['receipts_queue'])} {key}",
        ]
    for pair in info.get("folders", {}).values():
        lines += [
            f"# Customs through the DXP client's folders (send {shown(pair['send'], cwd)},"
            f" receive {shown(pair['receive'], cwd)}):",
            f"{cebgw} customs answer --transport folder --send {q(shown(pair['send'], cwd))}"
            f" --receive {q(shown(pair['receive'], cwd))} {key}",
        ]
    return "\n".join(lines)
