"""Google-signed ID tokens on the worker's doors: the Pub/Sub push route and the detection service's feed.

A caller proves who it is with `Authorization: Bearer <ID token>`: Pub/Sub push sends one for its push
service account, the Streamlit app one for its own service account (BUZZWATCH_DETECTION_AUTH=cloud-run).
A valid Google signature and the right audience say only that *some* Google account asked; `IdTokenPolicy`
also requires the expected account's e-mail, verified. Google's signing certificates are fetched once and
kept for as long as Google's `Cache-Control: max-age` says (hours), not fetched for every request.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from buzzwatch.settings import SettingsError, env_bool, env_str

log = logging.getLogger("buzzwatch.worker")

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
FETCH_TIMEOUT_S = 10.0

TokenVerifier = Callable[[str, str], Mapping[str, Any]]


class CachedCertificates:
    """A google-auth transport request that answers GETs from memory until the response's expiry.

    google-auth's `id_token.verify_token` fetches the certificates on every call; handed this request, it
    fetches them once per `Cache-Control: max-age` (or `Expires`). Responses without an expiry are not kept.
    One fetch at a time: threads that arrive while the certificates are being fetched wait for that answer.
    """

    def __init__(
        self, inner: Callable[..., Any] | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        if inner is None:
            from google.auth.transport.requests import Request

            inner = Request()
        self.inner = inner
        self.clock = clock
        self.fetches = 0
        self._kept: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        """The response for `url`: the kept one while it is fresh, else a new fetch (kept if it may be)."""
        if method != "GET":
            return self.inner(url, method=method, **kwargs)
        with self._lock:
            kept = self._kept.get(url)
            if kept is not None and self.clock() < kept[0]:
                return kept[1]
            kwargs.setdefault(
                "timeout", FETCH_TIMEOUT_S
            )  # google-auth's default is 120 s, with the lock held
            response = self.inner(url, method=method, **kwargs)
            self.fetches += 1
            lifetime = _lifetime_s(response.headers, self.clock())
            if response.status == 200 and lifetime > 0:
                self._kept[url] = (self.clock() + lifetime, response)
            else:
                self._kept.pop(url, None)
            return response


def _lifetime_s(headers: Mapping[str, str], now: float) -> float:
    """How long a response may be kept: `Cache-Control: max-age`, else `Expires`; 0 when neither says."""
    lowered = {key.lower(): value for key, value in headers.items()}
    control = lowered.get("cache-control", "")
    if "no-store" in control or "no-cache" in control:
        return 0.0
    max_age = re.search(r"max-age=(\d+)", control)
    if max_age:
        return float(max_age.group(1))
    try:
        expires = email.utils.parsedate_to_datetime(lowered.get("expires", ""))
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, expires.timestamp() - now)


class GoogleTokenVerifier:
    """Verifies a Google-signed ID token (signature, expiry, audience, issuer) and returns its claims."""

    def __init__(self, certs_url: str = GOOGLE_CERTS_URL, request: Callable[..., Any] | None = None) -> None:
        self.certs_url = certs_url
        self.request = request or CachedCertificates()

    def __call__(self, token: str, audience: str) -> Mapping[str, Any]:
        """The token's claims; ValueError (or a google-auth error) when it is not valid for `audience`."""
        from google.oauth2 import id_token

        claims = id_token.verify_token(token, self.request, audience=audience, certs_url=self.certs_url)
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise ValueError(f"wrong issuer {claims.get('iss')!r}")
        return claims


@dataclass(frozen=True)
class IdTokenPolicy:
    """Who may call a door: an ID token for `audience`, from `service_account` (its verified e-mail).

    Settings (PREFIX is PUSH_AUTH for the push route, DETECTION_FEED_AUTH for the detection feed):
    PREFIX_AUDIENCE turns the check on; PREFIX_SERVICE_ACCOUNT is the e-mail the token must carry, required
    with an audience unless PREFIX_ALLOW_ANY_ACCOUNT=true says that any Google account will do.
    """

    prefix: str
    audience: str | None = None
    service_account: str | None = None
    allow_any_account: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str) -> IdTokenPolicy:
        """Read PREFIX_AUDIENCE, PREFIX_SERVICE_ACCOUNT and PREFIX_ALLOW_ANY_ACCOUNT."""
        return cls(
            prefix=prefix,
            audience=env_str(env, f"{prefix}_AUDIENCE"),
            service_account=env_str(env, f"{prefix}_SERVICE_ACCOUNT"),
            allow_any_account=env_bool(env, f"{prefix}_ALLOW_ANY_ACCOUNT", False),
        )

    def check(self) -> None:
        """Refuse an audience without an account: a token from any Google account would then pass."""
        prefix = self.prefix
        if self.audience and not self.service_account and not self.allow_any_account:
            raise SettingsError(
                f"{prefix}_AUDIENCE is set but {prefix}_SERVICE_ACCOUNT is not: any Google account's token "
                f"would be accepted; set {prefix}_SERVICE_ACCOUNT to the caller's service-account e-mail "
                f"(or {prefix}_ALLOW_ANY_ACCOUNT=true if that is really meant)"
            )

    def allows(self, authorization: str, verifier: TokenVerifier) -> bool:
        """Whether the `Authorization` header satisfies the policy (always, when no audience is set)."""
        if not self.audience:
            return True
        if not authorization.startswith("Bearer "):
            return False
        try:
            claims = verifier(authorization.removeprefix("Bearer ").strip(), self.audience)
        except Exception as exc:  # any verification failure is a refusal
            log.warning("ID token refused", extra={"error": str(exc)[:300]})
            return False
        email, verified = claims.get("email"), claims.get("email_verified")
        if self.service_account and (email != self.service_account or verified is not True):
            log.warning("ID token from another account", extra={"email": email, "email_verified": verified})
            return False
        return True
