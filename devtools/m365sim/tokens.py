"""Token minting and checking: RS256 JWTs (Entra access/id tokens) and HMAC-signed opaque tokens
(the legacy SharePoint service token, FedAuth/rtFa/SPOIDCRL cookies, refresh tokens).

One RSA key per simulator process, loaded once; the JWS header is pre-encoded so that each token
costs one RSA signature and a JSON dump (the token endpoint's hot path).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: Resource URL → the first-party application id Entra puts in MFA error texts and ``aud`` aliases.
RESOURCE_APP_IDS = {
    "https://graph.microsoft.com": "00000003-0000-0000-c000-000000000000",
    "https://vault.azure.net": "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
    "sharepoint": "00000003-0000-0ff1-ce00-000000000000",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(Exception):
    """A presented token is unusable; ``reason`` is one of empty, malformed, signature, expired, audience."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


class TokenService:
    def __init__(self):
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self._key.public_key()
        numbers = self.public_key.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        self.kid = b64url(hashlib.sha256(n).digest()[:20])
        self.jwk = {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": b64url(n), "e": b64url(e)}
        self._header = b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid},
                                         separators=(",", ":")).encode())
        self._hmac_key = os.urandom(32)
        self._cache: dict[tuple, str] = {}

    # ------------------------------------------------------------------ JWT

    def sign(self, claims: dict, *, cache_key: tuple | None = None) -> str:
        """An RS256 JWT of ``claims``.

        With ``cache_key`` the signature is reused for identical requests within the same second
        (same ``iat``): Entra's tokens for the same subject, client and resource minted in one second
        differ only in their ``uti``, and one RSA signature per key per second keeps the token endpoint
        fast under load.
        """
        if cache_key is not None:
            return self._cached((cache_key, claims.get("iat")), lambda: self._sign(claims))
        return self._sign(claims)

    def _cached(self, key: tuple, make) -> str:
        token = self._cache.get(key)
        if token is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            token = self._cache[key] = make()
        return token

    def _sign(self, claims: dict) -> str:
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{payload}".encode("ascii")
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{self._header}.{payload}.{b64url(signature)}"

    def verify(self, token: str | None, audiences: tuple[str, ...]) -> dict:
        """Check signature, expiry and audience; returns the claims or raises :class:`TokenError`."""
        if not token:
            raise TokenError("empty")
        try:
            return jwt.decode(token, self.public_key, algorithms=["RS256"], audience=list(audiences),
                              options={"require": ["exp", "aud", "iss"]}, leeway=0)
        except jwt.ExpiredSignatureError:
            raise TokenError("expired") from None
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
            if isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim != "aud":
                raise TokenError("malformed", str(exc)) from None
            raise TokenError("audience", self._peek_audience(token)) from None
        except jwt.InvalidSignatureError:
            raise TokenError("signature") from None
        except jwt.PyJWTError as exc:
            raise TokenError("malformed", str(exc)) from None

    @staticmethod
    def _peek_audience(token: str) -> str:
        try:
            return str(jwt.decode(token, options={"verify_signature": False}).get("aud", ""))
        except jwt.PyJWTError:
            return ""

    # ------------------------------------------------------------------ opaque HMAC tokens

    def seal(self, kind: str, data: dict, lifetime: int, *, cache_key: tuple | None = None) -> str:
        """An HMAC-sealed token; with ``cache_key`` reused for identical requests within one second."""
        now = int(time.time())
        if cache_key is not None:
            return self._cached((cache_key, kind, now), lambda: self.seal(kind, data, lifetime))
        body = dict(data, k=kind, iat=now, exp=now + lifetime, n=uuid.uuid4().hex[:12])
        raw = b64url(json.dumps(body, separators=(",", ":")).encode())
        mac = b64url(hmac.new(self._hmac_key, f"{kind}.{raw}".encode(), hashlib.sha256).digest())
        return f"{raw}.{mac}"

    def unseal(self, kind: str, token: str | None) -> dict | None:
        """The data of a sealed token of this kind, or None if forged, of another kind or expired."""
        if not token or token.count(".") != 1:
            return None
        raw, mac = token.split(".")
        good = b64url(hmac.new(self._hmac_key, f"{kind}.{raw}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(good, mac):
            return None
        try:
            data = json.loads(b64url_decode(raw))
        except ValueError:
            return None
        if data.get("k") != kind or data.get("exp", 0) < time.time():
            return None
        return data
