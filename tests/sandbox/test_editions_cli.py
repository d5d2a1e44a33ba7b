"""Both editions and empty content through the integrator's commands, against `make run`'s
sandbox: `cebgw send`, `cebgw customs answer`, `cebgw receipts`, run as a new user would."""

from __future__ import annotations

import json

from . import test_first_hour as first_hour
from .test_first_hour import CEBGW_CMD, ROOT, Served, _run, fresh_env

sandbox_server = first_hour.served  # the `served` fixture: `make run`'s server, run for real

# One document per business key: the -empty and -2018 variants of a type share their keys.
SAMPLES = ["samples/valid/CEB311-empty.xml", "samples/valid/CEB303-2018.xml", "samples/valid/CEB621-2018.xml"]


def test_send_answer_and_receipts_for_both_editions(sandbox_server: Served) -> None:
    served = sandbox_server
    served.banner()
    info = served.info()
    accounts = {a["name"]: a for a in info["accounts"]}
    customs = info["customs"]
    sent = []
    for sample in SAMPLES:
        data = (ROOT / sample).read_bytes()
        token = served.token_for(data)
        done = _run(f"{CEBGW_CMD} send {sample} --url {served.url} --token {token}", env=fresh_env())
        assert done.returncode == 0, done.stderr
        sent.append((sample, token, done.stdout))
    assert "CEB311 id=" in sent[0][2] and "edition=202205" in sent[0][2]
    assert "CEB303 id=" in sent[1][2] and "edition=2018" in sent[1][2]
    assert "CEB621 id=" in sent[2][2] and "edition=2018" in sent[2][2]
    answer = _run(f"{CEBGW_CMD} customs answer --url {served.url} --token {customs['token']} "
                  f"--key {customs['key']} --cert {customs['cert']} --status 2 120", env=fresh_env())
    assert answer.returncode == 0, answer.stdout + answer.stderr
    for code, receipt in (("CEB311", "CEB312"), ("CEB303", "CEB304"), ("CEB621", "CEB622")):
        assert f"{code} message" in answer.stdout and f"{receipt} status 120 -> delivered" in answer.stdout, \
            answer.stdout
    # Each sender polls its own receipts: two per declaration (statuses 2 and 120).
    by_token: dict[str, int] = {}
    for _, token, _ in sent:
        by_token[token] = by_token.get(token, 0) + 2
    for token, owed in by_token.items():
        done = _run(f"{CEBGW_CMD} receipts --url {served.url} --token {token} --format json",
                    env=fresh_env())
        assert done.returncode == 0, done.stderr
        items = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        assert len(items) == owed, (token, items)
    assert accounts  # the sandbox's enterprises are there
