"""One exception hierarchy with stable codes, and the table that renders them.

Every error the gateway reports has a code such as ``CEBGW-XSD-LENGTH`` that never
changes meaning.  :data:`ERRORS` gives each code its HTTP status, CLI exit code,
CEB900 ``returnStatus`` and an English and a Chinese text, so the CLI, the HTTP API
and the CEB900 receipts all say the same thing for the same fault.

Rule codes (``CEBGW-RULE-…``) come from the rule data files and are registered there;
:func:`register` is how a data file adds its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

Severity = Literal["error", "warning"]

# CLI exit codes: a small fixed set, never a count.
EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3  # a bug: the CLI's outermost handler caught an unexpected exception
EXIT_CRASH_LOOP = 4  # cebgw serve --workers: workers kept dying, so the service stopped


@dataclass(frozen=True)
class ErrorSpec:
    """How one error code is rendered everywhere."""

    code: str
    http: int
    exit: int
    ceb_status: str
    en: str
    zh: str


ERRORS: dict[str, ErrorSpec] = {}


def register(code: str, http: int, exit: int, ceb_status: str, en: str, zh: str) -> ErrorSpec:
    """Add a row to the error table; a code may be registered once, with one meaning."""
    spec = ErrorSpec(code, http, exit, ceb_status, en, zh)
    old = ERRORS.get(code)
    if old is not None and old != spec:
        raise ValueError(f"error code {code} registered twice with different meanings")
    ERRORS[code] = spec
    return spec


# CEB900 returnStatus values follow the DXP error table (spec §9.1), negated:
# 0001 bad format, 0002 fails schema, 1001 invalid signature, 1002 expired,
# 1004 signature does not match data, 1999 other security, 2999 business logic, 3999 system.
_ROWS: list[tuple[str, int, int, str, str, str]] = [
    # parsing
    ("CEBGW-PARSE-SYNTAX", 400, 1, "-1", "not well-formed XML", "报文不是格式正确的XML"),
    ("CEBGW-PARSE-EMPTY", 400, 1, "-1", "empty message", "报文为空"),
    ("CEBGW-PARSE-DTD", 400, 1, "-1", "DTDs and entity declarations are not allowed", "报文不允许包含DTD或实体声明"),
    ("CEBGW-PARSE-TOO-LARGE", 413, 1, "-1", "message exceeds the size limit", "报文超过大小限制"),
    ("CEBGW-PARSE-TOO-DEEP", 400, 1, "-1", "message nesting exceeds the depth limit", "报文嵌套层数超过限制"),
    ("CEBGW-PARSE-ENCODING", 400, 1, "-1", "message is not valid UTF-8", "报文编码不是有效的UTF-8"),
    ("CEBGW-PARSE-COMMENT", 400, 1, "-1", "comments are not allowed inside the message", "报文内容中不允许包含注释"),
    ("CEBGW-PARSE-PI", 400, 1, "-1", "processing instructions are not allowed inside the message",
     "报文内容中不允许包含处理指令"),
    ("CEBGW-PARSE-TOO-MANY-NODES", 400, 1, "-1", "message has more elements than the limit", "报文节点数超过限制"),
    ("CEBGW-PARSE-TOO-MANY-ATTRIBUTES", 400, 1, "-1", "an element has more attributes than the limit",
     "节点属性数超过限制"),
    ("CEBGW-PARSE-TOO-MANY-NAMESPACES", 400, 1, "-1", "an element has more namespaces in scope than the limit",
     "节点命名空间数超过限制"),
    # identification and envelopes
    ("CEBGW-IDENT-UNKNOWN", 422, 1, "-1", "not a known CEB or DXP message", "无法识别的报文类型"),
    ("CEBGW-IDENT-NAMESPACE", 422, 1, "-1", "root element is not in the CEB or DXP namespace", "根节点命名空间错误"),
    ("CEBGW-ENV-DATA", 422, 1, "-1", "DXP envelope Data is not a base64 CEB message", "DXP报文Data节点不是有效的Base64业务报文"),
    ("CEBGW-ENV-NESTED", 422, 1, "-1", "envelope nested too deeply", "报文封装层次过多"),
    # schema
    ("CEBGW-XSD-MISSING", 422, 1, "-2", "required element is missing", "缺少必填节点"),
    ("CEBGW-XSD-UNEXPECTED", 422, 1, "-2", "element not allowed here", "节点不允许出现在此位置"),
    ("CEBGW-XSD-LENGTH", 422, 1, "-2", "value length out of range", "字段长度不符合要求"),
    ("CEBGW-XSD-TYPE", 422, 1, "-2", "value is not of the required type", "字段类型不符合要求"),
    ("CEBGW-XSD-DIGITS", 422, 1, "-2", "too many digits", "数字位数超出限制"),
    ("CEBGW-XSD-ATTRIBUTE", 422, 1, "-2", "attribute missing or not allowed", "属性缺失或不允许"),
    ("CEBGW-XSD-COUNT", 422, 1, "-2", "too many occurrences", "节点出现次数超出限制"),
    ("CEBGW-XSD-INVALID", 422, 1, "-2", "fails the schema", "报文不符合XSD"),
    ("CEBGW-EDITION-REFUSED", 422, 1, "-2", "message follows an edition of the standard this gateway does not accept",
     "报文所属的报文规范版本不被本网关接受"),
    # signatures
    ("CEBGW-SIG-MISSING", 422, 1, "-1001", "signature required but missing", "缺少报文签名"),
    ("CEBGW-SIG-MALFORMED", 422, 1, "-1001", "signature element is malformed", "签名节点格式错误"),
    ("CEBGW-SIG-MULTIPLE", 422, 1, "-1001", "more than one signature", "报文包含多个签名"),
    ("CEBGW-SIG-REFERENCE", 422, 1, "-1001", "signature must cover the whole document (Reference URI=\"\")",
     "签名必须覆盖整个报文"),
    ("CEBGW-SIG-WRAPPING", 422, 1, "-1001", "signature is not in its place or content lies outside what was signed",
     "签名位置错误或存在未签名内容"),
    ("CEBGW-SIG-ALGORITHM", 422, 1, "-1001", "algorithm not allowed", "不允许的签名算法"),
    ("CEBGW-SIG-DIGEST", 422, 1, "-1004", "digest does not match the document", "摘要值与报文不符"),
    ("CEBGW-SIG-VALUE", 422, 1, "-1004", "signature value does not verify", "签名值验证失败"),
    ("CEBGW-SIG-KEY-WEAK", 422, 1, "-1001", "key too weak", "密钥强度不足"),
    ("CEBGW-SIG-CERT-UNREGISTERED", 422, 1, "-1001", "certificate is not registered for the sender",
     "签名证书未登记到发送企业"),
    ("CEBGW-SIG-CERT-EXPIRED", 422, 1, "-1002", "certificate expired", "证书已过期"),
    ("CEBGW-SIG-CERT-NOT-YET-VALID", 422, 1, "-1002", "certificate not yet valid", "证书尚未生效"),
    ("CEBGW-SIG-CERT-REVOKED", 422, 1, "-1001", "certificate revoked", "证书已吊销"),
    ("CEBGW-SIG-KEY", 400, 2, "-1999", "signing key unusable", "签名密钥不可用"),
    ("CEBGW-SIG-SIGNER", 502, 2, "-1999", "remote signer failed", "远程签名服务失败"),
    # access, conflicts, storage
    ("CEBGW-AUTH-MISSING", 401, 2, "-1999", "credentials missing or invalid", "缺少或无效的认证信息"),
    ("CEBGW-AUTH-FORBIDDEN", 403, 2, "-1999", "not allowed for this account", "账户无此权限"),
    ("CEBGW-AUTH-SENDER", 403, 2, "-1999", "copCode is not this account's", "BaseTransfer/copCode不属于当前账户"),
    ("CEBGW-NOT-FOUND", 404, 2, "-2999", "not found", "未找到"),
    ("CEBGW-CONFLICT-GUID", 409, 1, "-2999", "guid already used with different content", "guid已被不同内容的报文使用"),
    ("CEBGW-MEDIA-TYPE", 415, 2, "-1", "unsupported media type", "不支持的媒体类型"),
    ("CEBGW-TIMEOUT", 408, 2, "-1", "the request was not received in time", "请求接收超时"),
    ("CEBGW-STORE", 503, 2, "-3999", "store unavailable", "存储不可用"),
    # CLI and configuration
    ("CEBGW-USAGE", 400, 2, "-3999", "usage error", "用法错误"),
    ("CEBGW-IO", 400, 2, "-3999", "cannot read or write file", "文件读写失败"),
    ("CEBGW-CONFIG", 500, 2, "-3999", "configuration error", "配置错误"),
    # translation between enterprise JSON and CEB XML (gateway/mapping/, mappings/)
    ("CEBGW-MAPPING", 422, 1, "-2", "the value cannot be carried into the CEB message or edition",
     "该值无法转换到目标报文或报文规范版本"),
    ("CEBGW-JSON-SYNTAX", 400, 1, "-1", "not a well-formed JSON object", "不是格式正确的JSON对象"),
    ("CEBGW-JSON-TYPE", 422, 1, "-2", "JSON value of the wrong type", "JSON字段值类型错误"),
    ("CEBGW-JSON-UNKNOWN", 422, 1, "-2", "unknown JSON field", "未知的JSON字段"),
    ("CEBGW-JSON-REQUIRED", 422, 1, "-2", "required JSON field missing", "缺少必填的JSON字段"),
    ("CEBGW-JSON-LENGTH", 422, 1, "-2", "JSON value length out of range", "JSON字段长度不符合要求"),
    ("CEBGW-JSON-AMOUNT", 422, 1, "-2", "amount not exact within its digits (N19,5)", "金额数值超出位数限制或无法精确表示"),
    ("CEBGW-JSON-COUNT", 422, 1, "-2", "too many or too few records in a JSON array", "JSON数组中的记录数不符合要求"),
    ("CEBGW-JSON-FORMAT", 422, 1, "-2", "date, time or code name cannot be converted", "日期、时间或代码名称无法转换"),
    ("CEBGW-AUTH-CUSTODY", 403, 2, "-1999", "this account may not have the gateway sign for it",
     "该账户未授权网关代为签名"),
]
for _row in _ROWS:
    register(*_row)


@dataclass(frozen=True)
class Finding:
    """One problem found in a message: what, where, how bad.

    ``path`` names the element with record indexes, e.g.
    ``/CEB311Message/Order[3]/OrderHead/acturalPaid``; ``field`` is its local name.
    """

    code: str
    message: str
    severity: Severity = "error"
    line: int | None = None
    path: str | None = None
    field: str | None = None
    message_zh: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "message_zh": self.message_zh or ERRORS[self.code].zh,
            "severity": self.severity,
            "line": self.line,
            "path": self.path,
            "field": self.field,
        }

    def render(self, source: str = "-") -> str:
        """``file:line: field: message [code]`` as the CLI prints it."""
        where = f"{source}:{self.line}" if self.line else source
        what = f"{self.field}: " if self.field else ""
        return f"{where}: {what}{self.message} [{self.code}]"


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    code: ClassVar[str] = "CEBGW-CONFIG"

    def __init__(self, message: str, *, code: str | None = None,
                 findings: tuple[Finding, ...] = (), field: str | None = None, omitted: int = 0) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.field = field
        self.findings = findings or (Finding(self.code, message, field=field),)
        self.omitted = omitted  # findings beyond those kept (see cap_findings)

    @property
    def spec(self) -> ErrorSpec:
        return ERRORS[self.code]

    @property
    def http_status(self) -> int:
        return self.spec.http

    @property
    def exit_code(self) -> int:
        return self.spec.exit

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "message_zh": self.spec.zh,
            "errors": [f.as_dict() for f in self.findings],
            "errors_omitted": self.omitted,
        }


class InputError(GatewayError):
    """The message itself is wrong."""

    code = "CEBGW-PARSE-SYNTAX"


class ParseError(InputError):
    code = "CEBGW-PARSE-SYNTAX"


class IdentifyError(InputError):
    code = "CEBGW-IDENT-UNKNOWN"


class EnvelopeError(InputError):
    code = "CEBGW-ENV-DATA"


class ValidationFailed(InputError):
    """Schema or rule findings; raised once with all of them."""

    code = "CEBGW-XSD-INVALID"


class MappingError(InputError):
    """Enterprise JSON that cannot be translated into the CEB message (or a message that
    cannot be carried into another edition); its findings name the JSON path of each field."""

    code = "CEBGW-MAPPING"


class SignatureError(GatewayError):
    """A signature is missing, malformed, or does not verify."""

    code = "CEBGW-SIG-VALUE"


class CertificateError(SignatureError):
    code = "CEBGW-SIG-CERT-UNREGISTERED"


class KeyError_(GatewayError):
    """A signing key cannot be loaded or used (named to avoid shadowing the builtin)."""

    code = "CEBGW-SIG-KEY"


class SignerError(GatewayError):
    code = "CEBGW-SIG-SIGNER"


class AuthError(GatewayError):
    code = "CEBGW-AUTH-MISSING"


class ForbiddenError(AuthError):
    code = "CEBGW-AUTH-FORBIDDEN"


class NotFoundError(GatewayError):
    code = "CEBGW-NOT-FOUND"


class ConflictError(GatewayError):
    code = "CEBGW-CONFLICT-GUID"


class MediaTypeError(GatewayError):
    code = "CEBGW-MEDIA-TYPE"


class RequestTimeout(GatewayError):
    """The client did not send its request in time."""

    code = "CEBGW-TIMEOUT"


class StoreError(GatewayError):
    code = "CEBGW-STORE"


class UsageError(GatewayError):
    code = "CEBGW-USAGE"


class IOFailure(GatewayError):
    code = "CEBGW-IO"


class ConfigError(GatewayError):
    code = "CEBGW-CONFIG"


# Findings one answer carries (HTTP body, CEB900, CLI): the first ones and a count of the
# rest, so an answer cannot grow with the input.
DEFAULT_MAX_FINDINGS = 100


def cap_findings(found: Sequence[Finding], limit: int) -> tuple[tuple[Finding, ...], int]:
    """At most ``limit`` of ``found`` in their order, and how many were left out.

    Errors are kept before warnings, so a capped list still says whether there were errors.
    """
    if len(found) <= limit:
        return tuple(found), 0
    errors = [i for i, f in enumerate(found) if f.severity == "error"][:limit]
    rest = [i for i, f in enumerate(found) if f.severity != "error"][:limit - len(errors)]
    kept = tuple(found[i] for i in sorted(errors + rest))
    return kept, len(found) - len(kept)
