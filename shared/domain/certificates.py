"""App profiles' certificates and the client assertion they sign in with.

The private key never leaves Key Vault: the assertion (RFC 7523 JWT, the certificate named by
``x5t#S256``) is built here and only its SHA-256 digest is handed to a signer, which is Key
Vault's sign operation in production (:class:`shared.domain.ports.CertificateStore`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

#: How long an assertion is valid (Entra accepts up to 10 minutes; msal uses the same).
ASSERTION_SECONDS = 600


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate held in Key Vault: its public part and where its key is (never the key)."""

    name: str
    version: str
    thumbprint: str  #: SHA-1, hex (what the Entra admin center shows)
    thumbprint_sha256: str  #: SHA-256, base64url (``x5t#S256``)
    not_before: datetime
    not_after: datetime
    key_id: str  #: the Key Vault key that signs
    cer: bytes  #: DER

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now).days

    def pem(self) -> str:
        body = base64.encodebytes(self.cer).decode().replace("\n", "")
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sha256_thumbprint(cer: bytes) -> str:
    return b64url(hashlib.sha256(cer).digest())


def client_assertion(*, client_id: str, audience: str, certificate: CertificateInfo,
                     sign: Callable[[bytes], bytes], now: float, jti: str | None = None) -> str:
    """An RS256 client assertion for ``client_id`` at ``audience`` (the token endpoint).

    :param sign: signs a SHA-256 digest with the certificate's key (RSASSA-PKCS1-v1_5).
    """
    header = {"alg": "RS256", "typ": "JWT", "x5t#S256": certificate.thumbprint_sha256}
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": jti or str(uuid.uuid4()),
              "iat": int(now), "nbf": int(now), "exp": int(now) + ASSERTION_SECONDS}
    signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    signature = sign(hashlib.sha256(signing_input.encode()).digest())
    return f"{signing_input}.{b64url(signature)}"


def token_roles(access_token: str) -> tuple[str, ...]:
    """The ``roles`` claim of an access token (decoded, not verified: the service that issued it
    is the one we just asked, over TLS; the resource verifies it)."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return ()
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()
