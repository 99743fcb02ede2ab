"""Caller identity for the retrieval API: hashed API keys and, optionally, JWTs.

API keys are stored only as SHA-256 digests and every look-up compares against every digest in
constant time. JWTs are verified for signature, issuer, audience and expiry. The principal always
comes from the credential, never from the request body. When the API is given its config file,
principals, keys and JWT settings reload on change without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from pydantic import ValidationError

from groundwork.enums import AuthMethod
from groundwork.errors import AuthError, ConfigError
from groundwork.settings import GroundworkConfig, JwtConfig, PrincipalConfig, load_config

logger = logging.getLogger(__name__)

_RELOAD_CHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller and how it proved who it is."""

    principal: PrincipalConfig
    method: AuthMethod


class _Verifier:
    """Everything derived from one version of the config file."""

    def __init__(self, config: GroundworkConfig) -> None:
        self.keys = [(bytes.fromhex(p.api_key_sha256), p) for p in config.principals]
        self.jwt = config.auth.jwt
        self.jwt_keys: dict[str, Any] = {}
        if self.jwt is not None:
            if self.jwt.secret is not None:
                self.jwt_keys["HS256"] = self.jwt.secret.get_secret_value()
            if self.jwt.public_key_file is not None:
                try:
                    self.jwt_keys["RS256"] = self.jwt.public_key_file.read_text(encoding="utf-8")
                except OSError as exc:
                    raise ConfigError(f"cannot read auth.jwt.public_key_file: {exc.strerror}") from None


class Authenticator:
    """Turns a bearer credential into a :class:`Caller`, or raises :class:`AuthError`."""

    def __init__(self, config: GroundworkConfig, config_path: Path | None = None) -> None:
        self._verifier = _Verifier(config)
        self._path = config_path
        self._mtime = _mtime(config_path)
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def authenticate(self, token: str) -> Caller:
        """The caller holding ``token`` (an API key or a JWT)."""
        self._maybe_reload()
        verifier = self._verifier
        if verifier.jwt is not None and token.count(".") == 2:
            return Caller(_principal_from_jwt(token, verifier), AuthMethod.JWT)
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: PrincipalConfig | None = None
        for expected, principal in verifier.keys:
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        if found is None:
            raise AuthError("unknown API key")
        return Caller(found, AuthMethod.API_KEY)

    def _maybe_reload(self) -> None:
        if self._path is None or time.monotonic() - self._checked < _RELOAD_CHECK_S:
            return
        with self._lock:
            self._checked = time.monotonic()
            mtime = _mtime(self._path)
            if mtime == self._mtime:
                return
            self._mtime = mtime
            try:
                self._verifier = _Verifier(load_config(self._path))
                logger.info("principals and keys reloaded from %s", self._path)
            except ConfigError as exc:
                logger.error("config change not applied, keeping the previous principals: %s", exc)


def _mtime(path: Path | None) -> float | None:
    try:
        return os.stat(path).st_mtime if path is not None else None
    except OSError:
        return None


def _principal_from_jwt(token: str, verifier: _Verifier) -> PrincipalConfig:
    cfg: JwtConfig = verifier.jwt  # type: ignore[assignment]  # checked by the caller
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        raise AuthError("malformed token") from None
    if alg not in cfg.algorithms or alg not in verifier.jwt_keys:
        raise AuthError("token algorithm not accepted")
    try:
        claims = jwt.decode(
            token,
            verifier.jwt_keys[alg],
            algorithms=[alg],
            audience=cfg.audience,
            issuer=cfg.issuer,
            leeway=cfg.leeway_seconds,
            options={"require": ["exp", "iss", "aud", cfg.subject_claim]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("token audience not accepted") from None
    except jwt.InvalidIssuerError:
        raise AuthError("token issuer not accepted") from None
    except jwt.PyJWTError:
        raise AuthError("invalid token") from None
    try:
        return PrincipalConfig(
            name=claims[cfg.subject_claim],
            api_key_sha256="0" * 64,  # JWT callers have no key; this digest matches nothing
            groups=claims.get(cfg.groups_claim, []),
            regions=claims.get(cfg.regions_claim, []),
        )
    except (ValidationError, TypeError):
        raise AuthError("token claims do not describe a valid principal (subject, groups, regions)") from None
