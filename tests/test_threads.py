"""Validation on two threads at once (the event loop's and a server's checking thread) gives
each message its own findings: compiled schemas keep their last error log on themselves, so
each thread has its own copies (``xmlio.per_thread_cache``)."""

from __future__ import annotations

import threading

from gateway.catalog import load as load_catalog
from gateway.sandbox import samplegen
from gateway.validate import findings_of, xsd
from gateway.xmlio import parse


def _bogus(code: str, field: bytes, count: int) -> bytes:
    data = samplegen.build(code, seed=5, lines=3)
    return data.replace(b"<ceb:%s>" % field, b'<ceb:%s bogus="1">' % field, count)


def test_two_threads_never_read_each_others_findings() -> None:
    catalog = load_catalog()
    docs = {"a": catalog.identify(parse(_bogus("CEB311", b"qty", 3))),
            "b": catalog.identify(parse(_bogus("CEB311", b"price", 3)))}
    want = {k: [(f.code, f.field, f.line) for f in findings_of(v).findings] for k, v in docs.items()}
    assert want["a"] != want["b"] and all(want.values())
    wrong: list[str] = []

    def run(key: str) -> None:
        for _ in range(150):
            got = [(f.code, f.field, f.line) for f in findings_of(docs[key]).findings]
            if got != want[key]:
                wrong.append(key)

    threads = [threading.Thread(target=run, args=(k,)) for k in docs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert wrong == []


def test_each_thread_compiles_its_own_schema() -> None:
    mtype = load_catalog()["CEB311"]
    here = xsd.schema_for(mtype)
    there: list[object] = []
    t = threading.Thread(target=lambda: there.append(xsd.schema_for(mtype)))
    t.start()
    t.join(60)
    assert there and there[0] is not here and xsd.schema_for(mtype) is here
