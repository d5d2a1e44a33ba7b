"""``cebgw accounts list|add|token|client-cert|custody|remove``: the API account registry.

The file is the one ``accounts_path`` names in the gateway's settings; a running gateway
rereads it within ``accounts_check_interval_s`` of a change, so these commands take effect
without a restart.  Each change rewrites the file at once (comments are not kept).  A new
token is printed once, on stdout, and only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import accounts as acc
from ..dsig.keys import load_key
from ..errors import EXIT_OK, IOFailure, UsageError


def accounts_path(given: str | None) -> str:
    """``--accounts``, else ``$CEBGW_ACCOUNTS``; refuses to guess."""
    path = given or os.environ.get("CEBGW_ACCOUNTS")
    if not path:
        raise UsageError("which accounts file? give --accounts FILE or set CEBGW_ACCOUNTS")
    return path


def _load(args: argparse.Namespace) -> tuple[str, acc.Accounts, acc.Account]:
    """The accounts file, its accounts, and the one ``args.name`` names (UsageError if none)."""
    path = accounts_path(args.accounts)
    current = acc.read_accounts(path)
    found = current.by_name(args.name)
    if found is None:
        raise UsageError(f"{path}: no account {args.name!r} (cebgw accounts list)")
    return path, current, found


def _describe(a: acc.Account) -> dict[str, Any]:
    return {"name": a.name, "roles": sorted(a.roles), "codes": sorted(a.codes), "dxp_id": a.dxp_id,
            "certificates": list(a.certificates), "tokens": len(a.token_hashes),
            "client_certs": list(a.client_cert_hashes), "custody": a.custody}


def _list(args: argparse.Namespace) -> int:
    path = accounts_path(args.accounts)
    rows = [_describe(a) for a in acc.read_accounts(path).accounts]
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    for r in rows:
        print(f"{r['name']:<20} {','.join(r['roles']):<24} {r['dxp_id'] or '-':<17} "
              f"{' '.join(r['codes']) or '-'}  tokens {r['tokens']}, client certs {len(r['client_certs'])}"
              + (", custody signing" if r["custody"] else ""))
    return EXIT_OK


def _add(args: argparse.Namespace) -> int:
    path = accounts_path(args.accounts)
    current = acc.read_accounts(path, missing_ok=True)
    token, digest = acc.new_token()
    account = replace(acc.new_account(args.name, args.roles, args.codes, args.dxp_id or "", args.certificate),
                      token_hashes=(digest,))
    acc.write_accounts(path, acc.with_account(current, account))
    print(token)
    print(f"added account {account.name} to {path}; the token above is shown only once", file=sys.stderr)
    return EXIT_OK


def _token(args: argparse.Namespace) -> int:
    path, current, account = _load(args)
    token, digest = acc.new_token()
    kept = () if args.replace else account.token_hashes
    acc.write_accounts(path, acc.replaced(current, replace(account, token_hashes=(*kept, digest))))
    print(token)
    what = "replaces its other tokens" if args.replace else f"joins its {len(kept)} other token(s)"
    print(f"new token for {account.name} ({what}); shown only once", file=sys.stderr)
    return EXIT_OK


def _client_cert(args: argparse.Namespace) -> int:
    path, current, account = _load(args)
    try:
        data = Path(args.cert).read_bytes()
    except OSError as exc:
        raise IOFailure(f"cannot read {args.cert}: {exc.strerror or exc}") from None
    fp = acc.client_cert_fingerprint(data)
    change = acc.without_client_cert if args.remove else acc.with_client_cert
    acc.write_accounts(path, change(current, account.name, fp))
    print(f"{'removed' if args.remove else 'registered'} client certificate sha256 {fp} "
          f"{'from' if args.remove else 'for'} {account.name}")
    return EXIT_OK


def _custody(args: argparse.Namespace) -> int:
    path, current, account = _load(args)
    if args.remove:
        acc.write_accounts(path, acc.with_custody(current, account.name, "", ""))
        print(f"the gateway no longer signs for {account.name}: its JSON submissions are refused (403)")
        return EXIT_OK
    if not args.key:
        raise UsageError("give --key FILE (and --cert FILE for a PEM key), or --remove")
    key = str(Path(args.key).resolve())
    cert = str(Path(args.cert).resolve()) if args.cert else ""
    signer = load_key(key, cert or None)  # refuse a key that cannot sign before writing it down
    acc.write_accounts(path, acc.with_custody(current, account.name, key, cert))
    print(f"the gateway signs {account.name}'s JSON submissions with {key} "
          f"({signer.certificate.subject.rfc4514_string()})")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    path, current, account = _load(args)
    acc.write_accounts(path, acc.without(current, account.name))
    print(f"removed account {account.name}: its tokens and client certificates no longer authenticate"
          " (its stored messages and receipts stay)")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``accounts`` and its sub-commands."""
    p = subparsers.add_parser("accounts", help="list and change API accounts, tokens and client certificates")
    sub = p.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--accounts", help="accounts file (default $CEBGW_ACCOUNTS)")

    ls = sub.add_parser("list", parents=[common], help="list accounts (never tokens)")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    ls.set_defaults(func=_list)

    add = sub.add_parser("add", parents=[common], help="add an account; prints its first token once")
    add.add_argument("name")
    add.add_argument("--roles", nargs="+", required=True, metavar="ROLE",
                     help=f"one or more of {', '.join(sorted(acc.ROLES))}")
    add.add_argument("--codes", nargs="+", default=[], metavar="CODE",
                     help="enterprise codes it sends for (BaseTransfer/copCode)")
    add.add_argument("--dxp-id", help="its DXP id (the envelope SenderId; receipts go back to it)")
    add.add_argument("--certificate", action="append", default=[], metavar="ENTRY",
                     help="a signing-certificate registry entry of this account (repeatable)")
    add.set_defaults(func=_add)

    tok = sub.add_parser("token", parents=[common], help="issue a new token for an account; prints it once")
    tok.add_argument("name")
    tok.add_argument("--replace", action="store_true", help="revoke the account's other tokens")
    tok.set_defaults(func=_token)

    cc = sub.add_parser("client-cert", parents=[common],
                        help="register (or --remove) a mutual-TLS client certificate for an account")
    cc.add_argument("name")
    cc.add_argument("cert", help="certificate file (PEM or DER)")
    cc.add_argument("--remove", action="store_true")
    cc.set_defaults(func=_client_cert)

    cu = sub.add_parser("custody", parents=[common],
                        help="let the gateway sign an account's JSON submissions with a key it holds "
                             "(or --remove)")
    cu.add_argument("name")
    cu.add_argument("--key", help="private key (PEM, or .p12/.pfx with its certificate inside)")
    cu.add_argument("--cert", help="its certificate (PEM), for a PEM key")
    cu.add_argument("--remove", action="store_true")
    cu.set_defaults(func=_custody)

    rm = sub.add_parser("remove", parents=[common], help="remove an account (its data stays in the store)")
    rm.add_argument("name")
    rm.set_defaults(func=_remove)
