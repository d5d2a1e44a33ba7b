"""``sign_envelopes = true``: each DxpMsg customs takes is signed by the gateway key (on the event
loop, or with ``sign_threads`` on signer threads while the request goes on), verified here by
signxml, an independent XML-DSig, against the gateway certificate; Data is the exact submitted
bytes."""

from __future__ import annotations

import asyncio
import re

import pytest
from lxml import etree

from gateway.catalog import DS_NS
from gateway.sandbox import samplegen

from .kit import DXP, Sandbox, aio, declaration, envelope_data, running


def _verify_with_signxml(envelope: str, cert_pem: str) -> etree._Element:
    from signxml import DigestAlgorithm, SignatureMethod, XMLVerifier  # type: ignore[attr-defined]
    from signxml.verifier import SignatureConfiguration

    config = SignatureConfiguration(
        signature_methods=frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.RSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA1, DigestAlgorithm.SHA256}))
    signed: etree._Element = XMLVerifier().verify(envelope.encode(), x509_cert=cert_pem,
                                                  expect_config=config).signed_xml
    return signed


@pytest.mark.parametrize("threads", [0, 2], ids=["on-the-loop", "signer-threads"])
@aio
async def test_signed_envelopes_verify_independently(sb: Sandbox, threads: int) -> None:
    settings = sb.settings.with_(sign_envelopes=True, sign_threads=threads)
    assert settings.gateway_cert is not None
    cert_pem = settings.gateway_cert.read_text()
    owner, first = declaration(sb, "CEB621", seed=1)
    bodies = [first] + [declaration(sb, "CEB621", seed=seed)[1] for seed in range(2, 9)]
    async with running(settings) as api:
        answers = await asyncio.gather(*(api.post_xml(sb.token(owner), b) for b in bodies))
        assert [status for status, _ in answers] == [202] * len(bodies), answers
        # the same list declared again as new (appType 1, another guid): the lifecycle refuses it
        # while its envelope may be under way on a signer thread; nothing of it reaches customs
        again = re.sub(rb'guid="[^"]+"', b'guid="0F2D6B3E-0000-4000-8000-000000000001"',
                       samplegen.build("CEB621", seed=1), count=1)
        status, refused = await api.post_xml(sb.token(owner), sb.sign_as(owner, again))
        assert status == 409 and refused["error"]["code"] == "CEBGW-LIFECYCLE-DUPLICATE", refused
        status, batch = await api.get(sb.token("customs"), "/v1/customs/outbox?limit=100")
        assert status == 200 and len(batch["items"]) == len(bodies)
    got = {}
    for item in batch["items"]:
        env, inner = envelope_data(item["envelope"])
        assert env.find(f"{{{DS_NS}}}Signature") is not None
        signed = _verify_with_signxml(item["envelope"], cert_pem)
        assert etree.QName(signed).localname == "DxpMsg"
        cop = f"{DXP}TransInfo/{DXP}CopMsgId"
        assert signed.findtext(cop) == env.findtext(cop)
        got[item["message_id"]] = inner
    assert {answer["id"]: body for (_, answer), body in zip(answers, bodies, strict=True)} == got
