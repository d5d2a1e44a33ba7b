"""A sandbox data directory: store, accounts with fresh tokens, ``sandbox.json``.

:func:`ensure` creates it on first use and reuses it afterwards (tokens stay the same
across restarts).  ``sandbox.json`` tells a person or a test everything needed to call
the sandbox: URL, each account's token, key and certificate paths.

The sandbox has one identity set: the committed keys and certificates of
``certs/sandbox/`` and their registry, the same ones the samples, the README and
``cebgw verify`` (through ``certs/registry.toml``) use.  A data directory holds no keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..accounts import Account, Accounts, new_token, read_accounts, render_accounts, replaced, write_accounts
from ..config import Settings
from ..dsig.certgen import sandbox_enterprises
from ..errors import ConfigError

INFO_FILE = "sandbox.json"
TRANSPORT_ENTRIES = ("amqp", "folders")
API_ROLES = frozenset({"platform", "ecommerce", "payment", "logistics", "agent", "site_operator", "customs"})
# The committed sandbox keys, certificates and registry (certs/README.md), beside the package.
SANDBOX_CERTS = Path(__file__).resolve().parents[2] / "certs" / "sandbox"


def sandbox_certs() -> Path:
    """``certs/sandbox`` of this checkout; raises ConfigError if it is not there."""
    if not (SANDBOX_CERTS / "registry.toml").is_file():
        raise ConfigError(f"the sandbox uses the committed keys and registry in {SANDBOX_CERTS}, which is "
                          "missing: run the sandbox from a checkout of ceb-gateway", field="registry_path")
    return SANDBOX_CERTS


def settings_for(directory: Path) -> Settings:
    """Settings of a sandbox data directory (customs receipts must be signed, as the sandbox does)."""
    d, certs = directory.resolve(), sandbox_certs()
    return Settings(store_url=f"sqlite:///{d / 'gateway.db'}", registry_path=certs / "registry.toml",
                    accounts_path=d / "accounts.toml", require_customs_signature=True,
                    gateway_key=certs / "gateway-rsa.key.pem",
                    gateway_cert=certs / "gateway-rsa.cert.pem").check()


def _key_paths(name: str, certs: Path) -> dict[str, str]:
    return {"key": str(certs / f"{name}-rsa.key.pem"), "cert": str(certs / f"{name}-rsa.cert.pem"),
            "sm2_key": str(certs / f"{name}-sm2.key.pem"), "sm2_cert": str(certs / f"{name}-sm2.cert.pem")}


def _create(d: Path, certs: Path) -> dict[str, Any]:
    accounts: list[Account] = []
    listed: list[dict[str, Any]] = []
    customs: dict[str, Any] = {}
    for ent in sandbox_enterprises():
        roles = [r for r in ent["roles"] if r in API_ROLES]
        if not roles:
            continue  # the gateway itself is not an API account
        token, digest = new_token()
        name = str(ent["name"])
        also = tuple(ent.get("also_dxp_ids", ()))
        accounts.append(Account(name, frozenset(roles), frozenset({ent["code"]}), ent["dxp_id"],
                                (f"{name}-rsa", f"{name}-sm2"), (digest,), also_dxp_ids=also))
        row = {"name": name, "roles": roles, "codes": [ent["code"]], "dxp_id": ent["dxp_id"], "token": token,
               **_key_paths(name, certs)}
        if "customs" in roles:
            customs = {**{k: row[k] for k in ("name", "token", "key", "cert", "dxp_id")},
                       "dxp_ids": [ent["dxp_id"], *also]}
        else:
            listed.append(row)
    (d / "accounts.toml").write_text(render_accounts(accounts), encoding="utf-8")
    return {"url": "", "accounts": listed, "customs": customs}


def _answer_for_all(d: Path, info: dict[str, Any]) -> None:
    """A data directory made before customs answered for both its DXP ids (import and export)
    gets the missing ones in its accounts and ``sandbox.json``; its tokens stay."""
    path = d / "accounts.toml"
    accounts: Accounts = read_accounts(path, missing_ok=True)
    changed = accounts
    for ent in sandbox_enterprises():
        acc = accounts.by_name(str(ent["name"]))
        also = tuple(ent.get("also_dxp_ids", ()))
        if acc is not None and also and acc.also_dxp_ids != also:
            changed = replaced(changed, replace(acc, also_dxp_ids=also))
        if "customs" in ent["roles"]:
            info["customs"]["dxp_ids"] = [ent["dxp_id"], *also]
    if changed is not accounts:
        write_accounts(path, changed)


def ensure(directory: str | os.PathLike[str], *, url: str,
           transports: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create the sandbox in ``directory`` if needed; returns the ``sandbox.json`` contents
    (with ``url`` updated, the key paths those of ``certs/sandbox`` (also in a directory made
    when the sandbox still had keys of its own), and ``transports``' entries, e.g. ``"amqp"``,
    set: those of an earlier run that are not given are dropped). Raises ConfigError if it is
    unusable."""
    d, certs = Path(directory).resolve(), sandbox_certs()
    d.mkdir(parents=True, exist_ok=True)
    info_path = d / INFO_FILE
    if info_path.exists():
        try:
            info: dict[str, Any] = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{info_path}: {exc}") from None
        try:
            for row in [*info["accounts"], info["customs"]]:
                row.update(_key_paths(str(row.get("name", "customs")), certs))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{info_path}: not a sandbox description ({exc}); remove {d} to start over"
                              ) from None
        _answer_for_all(d, info)
    else:
        info = _create(d, certs)
    info["url"] = url
    for name in TRANSPORT_ENTRIES:
        info.pop(name, None)
    info.update(transports or {})
    tmp = info_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds tokens
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh, ensure_ascii=False, indent=2)
    os.replace(tmp, info_path)
    return info
