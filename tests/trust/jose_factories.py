"""Build compact JWS strings by hand, with any header and payload bytes (hostile ones too)."""

from __future__ import annotations

import base64
import json
from typing import Any

from joserfc.jws import JWSRegistry

from onerecord.trust.keys import SigningKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_bytes(value: Any) -> bytes:
    """JSON as a careless encoder writes it: NaN and Infinity included (allow_nan)."""
    return json.dumps(value, allow_nan=True).encode("utf-8")


def signed(key: SigningKey, header: Any, payload: bytes) -> str:
    """Sign `payload` under `header` with `key`'s own algorithm, whatever the header says."""
    signing_input = f"{b64(json_bytes(header))}.{b64(payload)}"
    signature = JWSRegistry.algorithms[key.alg].sign(signing_input.encode("ascii"), key.key)
    return f"{signing_input}.{b64(signature)}"


def dpop_header(key: SigningKey, **changes: Any) -> dict[str, Any]:
    """A valid DPoP proof header for `key`; `changes` replace or (with ...) drop members."""
    public = {k: v for k, v in key.public_jwk().items() if k not in ("kid", "use", "alg")}
    header: dict[str, Any] = {"alg": key.alg, "typ": "dpop+jwt", "jwk": public}
    return _changed(header, changes)


def kid_header(key: SigningKey, typ: str, /, **changes: Any) -> dict[str, Any]:
    """A valid header of a token verified by kid (access token, assertion, publish proof)."""
    return _changed({"alg": key.alg, "typ": typ, "kid": key.kid}, changes)


def _changed(header: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for name, value in changes.items():
        if value is ...:
            header.pop(name, None)
        else:
            header[name] = value
    return header
