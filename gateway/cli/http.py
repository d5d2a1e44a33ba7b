"""A tiny JSON-over-HTTP client for the CLI shells (urllib; no state kept between calls)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ..errors import IOFailure


def call(method: str, url: str, token: str, *, body: bytes | None = None,
         content_type: str = "application/json", timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    """Send one request; returns ``(status, JSON body)`` for any HTTP answer.
    Raises IOFailure when the server cannot be reached or answers something that is not JSON."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the user's own URL
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise IOFailure(f"{url}: {exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise IOFailure(f"{url}: answered {status} with a body that is not JSON") from None
    return status, data if isinstance(data, dict) else {"value": data}


def post_json(url: str, token: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST a JSON object."""
    return call("POST", url, token, body=json.dumps(payload).encode())
