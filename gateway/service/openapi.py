"""The OpenAPI 3.1 document served at ``/openapi.json`` (a test keeps it and the routes in agreement)."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..catalog import EDITIONS
from ..store import MAX_ID

# The edition of the standard a declaration follows (null: stored before editions were recorded).
_EDITION: dict[str, object] = {"type": ["string", "null"], "enum": [*EDITIONS, None]}

def _xml() -> dict[str, Any]:
    return {"application/xml": {"schema": {"type": "string"}}, "text/xml": {"schema": {"type": "string"}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "bad request or unparsable XML (with ceb900)", 401: "missing or invalid credentials",
            403: "not allowed for this account", 404: "not found (or another tenant's)",
            408: "the body did not arrive within body_timeout_s",
            409: "guid reused with different content, or a lifecycle refusal (CEBGW-LIFECYCLE-*)",
            413: "body over the size limit",
            415: "unsupported media type (XML bodies: application/xml or text/xml, UTF-8; "
                 "JSON bodies: application/json)", 422: "invalid message (with ceb900 for declarations)",
            503: "store unavailable"}
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


def _op(summary: str, ok: dict[str, Any], *errs: int, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, public: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **_errors(*errs)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


# Row ids, cursors: 64-bit signed integers in the store.
_ID = {"type": "integer", "minimum": 0, "maximum": MAX_ID}


def _q(name: str, kind: str = "integer", description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind},
            "description": description}


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]{1,19}$",
                       "description": "a row id in ASCII digits (anything else is not found)"}}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _schemas() -> dict[str, Any]:
    return {
        "Error": _obj(error=_obj(code={"type": "string"}, message={"type": "string"},
                                 message_zh={"type": "string"},
                                 errors={"type": "array", "items": _ref("Finding")},
                                 errors_omitted={"type": "integer", "description":
                                                 "findings beyond the first max_findings, not listed"}),
                      request_id={"type": "string"},
                      ceb900={"type": "string",
                              "description": "CEB900Message XML for a rejected declaration"}),
        "Finding": _obj(code={"type": "string"}, message={"type": "string"}, severity={"type": "string"},
                        line={"type": ["integer", "null"]}, path={"type": ["string", "null"]},
                        field={"type": ["string", "null"]}),
        "Accepted": _obj(id={"type": "integer"}, guid={"type": "string"}, message_type={"type": "string"},
                         status={"type": "string"}, edition=_EDITION,
                         business_keys={"type": "array", "items": {"type": "object"}},
                         warnings={"type": "array", "items": _ref("Finding"),
                                   "description": "findings that do not refuse the message, e.g. "
                                                  "CEBGW-APPTIME-SKEW"},
                         preflight={"type": "array", "items": _ref("Comparison"),
                                    "description": "the pre-flight comparison of each parcel it belongs to"}),
        "ParcelFinding": _obj(code={"type": "string"}, severity={"type": "string"},
                              document={"type": "string"}, field={"type": "string"},
                              line={"type": ["string", "null"]}, other_document={"type": ["string", "null"]},
                              other_field={"type": ["string", "null"]},
                              values={"type": "array", "items": {"type": "string"}},
                              message={"type": "string"}, message_zh={"type": "string"},
                              customs_code={"type": "string"},
                              customs_text={"type": "string", "description": "[Code:NNNN;Desc:...]"},
                              eport_code={"type": ["string", "null"]}),
        "Comparison": _obj(ebpCode={"type": "string"}, orderNo={"type": "string"},
                           missing={"type": "array", "items": {"type": "string"}},
                           findings={"type": "array", "items": _ref("ParcelFinding")},
                           held={"type": "array", "items": {"type": "integer"}},
                           released={"type": "array", "items": {"type": "integer"}}),
        "Parcel": _obj(ebpCode={"type": "string"}, orderNo={"type": "string"},
                       missing={"type": "array", "items": {"type": "string"}},
                       documents={"type": "object", "description": "CEB311/411/511/621: each version with"
                                  " its state, current/held/sent flags and receipt timeline"},
                       findings={"type": "array", "items": _ref("ParcelFinding")},
                       compared_at={"type": ["string", "null"]},
                       held={"type": "array", "items": {"type": "integer"}}),
        "Message": _obj(id={"type": "integer"}, guid={"type": "string"}, message_type={"type": "string"},
                        status={"type": "string"}, edition=_EDITION, business_keys={"type": "array"},
                        timeline={"type": "array"}),
        "Mailbox": _obj(items={"type": "array", "items": {"type": "object"}},
                        cursor={"type": ["integer", "null"]}),
    }


def document() -> dict[str, Any]:
    """The whole document (built per call; it is small)."""
    paths: dict[str, dict[str, Any]] = {
        "/v1/messages": {"post": _op(
            "Submit a CEB declaration (bare or in DxpMsg/DxpMsgSv), or its JSON (application/json, the "
            "type in messageType or X-Message-Type; mapped, then signed with the account's custody key: "
            "403 CEBGW-AUTH-CUSTODY for an account without one; errors name JSON paths)",
            {"202": _json(_ref("Accepted"), "durably stored and queued for customs"),
             "200": _json(_ref("Accepted"), "the same bytes were already accepted (first answer)")},
            400, 401, 403, 408, 409, 413, 415, 422, 503,
            body={**_xml(), "application/json": {"schema": {
                "type": "object", "description": "the JSON of GET /v1/schemas/{type}"}}},
            params=[{"name": "X-Message-Type", "in": "header", "required": False,
                     "schema": {"type": "string"},
                     "description": "the type of a JSON body (e.g. CEB311) if it has no messageType"}])},
        "/v1/schemas/{type}": {"get": _op(
            "The JSON a message type takes (JSON Schema, or format=markdown|xsd), in an edition",
            {"200": {"description": "the description", "content": {
                "application/schema+json": {"schema": {"type": "object"}}, "text/markdown": {},
                "application/xml": {}}}}, 400, 401, 404,
            params=[{"name": "type", "in": "path", "required": True, "schema": {"type": "string"},
                     "description": "a CEB message type such as CEB311"},
                    _q("edition", "string", " or ".join(EDITIONS) + " (default: the newest the type has)"),
                    _q("format", "string", "json-schema (default), markdown or xsd")])},
        "/v1/messages/{id}": {"get": _op(
            "A declaration's state, business keys and receipt timeline",
            {"200": _json(_ref("Message"), "the declaration")}, 401, 404, params=[_p("id")])},
        "/v1/receipts": {"get": _op(
            "The account's receipts in arrival order (long-poll with wait)",
            {"200": _json(_ref("Mailbox"), "receipts after the cursor")}, 400, 401,
            params=[_q("after"), _q("limit"), _q("wait", description="seconds, capped"),
                    _q("format", "string", "xml (default) or json (each item also gets `json`: the "
                                           "receipt record as JSON, returnInfo as code and text)")])},
        "/v1/receipts/ack": {"post": _op(
            "Mark receipts read up to a cursor",
            {"200": _json(_obj(acked={"type": "integer"}), "acknowledged")},
            400, 401, 408, 415, body={"application/json": {"schema": _obj(cursor=_ID)}})},
        "/v1/customs/outbox": {"get": _op(
            "Customs: lease a batch of DXP envelopes",
            {"200": _json(_obj(items={"type": "array"}), "leased envelopes")}, 401, 403,
            params=[_q("limit"), _q("wait")])},
        "/v1/customs/outbox/ack": {"post": _op(
            "Customs: acknowledge delivered envelopes",
            {"200": _json(_obj(acked={"type": "integer"}), "acknowledged")}, 400, 401, 403, 408, 415,
            body={"application/json": {
                "schema": _obj(ids={"type": "array", "items": _ID})}})},
        "/v1/customs/receipts": {"post": _op(
            "Customs: post a receipt message (any receipt type, bare or enveloped)",
            {"200": _json(_obj(message_type={"type": "string"}, records={"type": "array"}), "per record")},
            400, 401, 403, 408, 413, 415, 422, body=_xml())},
        "/v1/parcels/{ebpCode}/{orderNo}": {"get": _op(
            "A parcel's documents (order, payment, waybill, inventory list), their versions, states,"
            " receipts and the findings of the pre-flight comparison; for the enterprises involved only",
            {"200": _json(_ref("Parcel"), "the parcel")}, 401, 404,
            params=[{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in ("ebpCode", "orderNo")])},
        "/v1/held": {"get": _op(
            "Inventory lists held back from customs by the pre-flight comparison (operators: all)",
            {"200": _json(_obj(items={"type": "array"}), "held lists")}, 401, params=[_q("limit")])},
        "/v1/held/{id}/release": {"post": _op(
            "Operators: send a held inventory list on to customs as it is",
            {"200": _json(_obj(message_id={"type": "integer"}, released_by={"type": "string"}), "released")},
            401, 403, 404, params=[_p("id")])},
        "/v1/dead-letters": {"get": _op(
            "Operators: receipts that matched no declaration",
            {"200": _json(_obj(items={"type": "array"}), "open dead letters")}, 401, 403,
            params=[_q("limit")])},
        "/v1/dead-letters/{id}/reroute": {"post": _op(
            "Operators: attach a dead letter to a declaration",
            {"200": _json(_obj(message_id={"type": "integer"}), "delivered")}, 400, 401, 403, 404, 408, 415,
            params=[_p("id")],
            body={"application/json": {"schema": _obj(message_id=_ID)}})},
        "/healthz": {"get": _op("Liveness", {"200": _json(_obj(status={"type": "string"}), "up")},
                                public=True)},
        "/metrics": {"get": _op("Prometheus metrics", {"200": {"description": "text exposition",
                                                               "content": {"text/plain": {}}}}, public=True)},
        "/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                                     public=True)},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ceb-gateway", "version": __version__,
                 "description": "CEB declarations to China Customs and their receipts back."},
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
