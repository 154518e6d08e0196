"""ID tokens on the worker's doors (push route, detection feed), verified by google-auth for real.

Google's signing cannot run here, so the tests sign their own tokens with a local RSA key and serve its
certificate the way Google does (`{key id: PEM}` with `Cache-Control: max-age`); everything else is the
production path: google-auth's verification, the certificate cache, the account policy, the servers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from buzzwatch.settings import CommonSettings, SettingsError
from buzzwatch.telemetry import LocalTelemetry, RecordingTelemetry
from stack.ports import free_port
from tests.support.integration import server_fixture
from worker.auth import CachedCertificates, GoogleTokenVerifier, IdTokenPolicy
from worker.scoring import WorkerSettings

PUSH_ACCOUNT = "bw-pubsub-push@proj.iam.gserviceaccount.com"
APP_ACCOUNT = "bw-streamlit@proj.iam.gserviceaccount.com"
WORKER_URL = "https://buzzwatch-worker-abc.a.run.app"


class SigningKey:
    """An RSA key with a self-signed certificate: what Google publishes, for a key of our own."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key_id)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.signer = crypt.RSASigner.from_string(private_pem, key_id=key_id)

    def token(self, audience: str, email: str, **claims: Any) -> str:
        """A Google-style ID token for `audience` from `email`, valid an hour unless `claims` say not."""
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "sub": "1234567890",
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        payload.update(claims)
        return jwt.encode(self.signer, payload).decode()


class CertificateServer:
    """Serves the certificates of `keys` like Google's endpoint and counts the fetches."""

    def __init__(self, keys: list[SigningKey], max_age_s: int = 3600) -> None:
        self.fetches = 0
        body = json.dumps({key.key_id: key.certificate_pem for key in keys}).encode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", f"public, max-age={max_age_s}, must-revalidate")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/oauth2/v1/certs"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def google_key() -> SigningKey:
    return SigningKey("google-key-1")


@server_fixture
def certificates(google_key: SigningKey) -> Iterator[CertificateServer]:
    server = CertificateServer([google_key])
    yield server
    server.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_certificates_are_fetched_once_per_max_age_not_per_token(google_key, certificates) -> None:
    clock = FakeClock()
    verifier = GoogleTokenVerifier(certificates.url, CachedCertificates(clock=clock))
    token = google_key.token(WORKER_URL, PUSH_ACCOUNT)
    threads = [threading.Thread(target=verifier, args=(token, WORKER_URL)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(50):
        assert verifier(token, WORKER_URL)["email"] == PUSH_ACCOUNT
    assert certificates.fetches == 1
    clock.now += 3599
    verifier(token, WORKER_URL)
    assert certificates.fetches == 1
    clock.now += 2  # past Google's max-age: fetched again
    verifier(token, WORKER_URL)
    assert certificates.fetches == 2


@pytest.mark.parametrize(
    ("why", "claims", "audience"),
    [
        ("another audience", {}, "https://elsewhere.a.run.app"),
        ("expired", {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, WORKER_URL),
        ("another issuer", {"iss": "https://evil.example"}, WORKER_URL),
    ],
)
def test_invalid_tokens_are_refused(google_key, certificates, why, claims, audience) -> None:
    verifier = GoogleTokenVerifier(certificates.url)
    with pytest.raises(Exception):  # noqa: B017 - google-auth raises ValueError or its own errors
        verifier(google_key.token(audience, PUSH_ACCOUNT, **claims), WORKER_URL)


def test_a_token_signed_by_another_key_is_refused(certificates) -> None:
    forger = SigningKey("google-key-1")  # the same key id, another key
    with pytest.raises(ValueError):
        GoogleTokenVerifier(certificates.url)(forger.token(WORKER_URL, PUSH_ACCOUNT), WORKER_URL)


def _push_app(tmp_path: Path, env: dict[str, str], certificates: CertificateServer):
    """The worker app with a stand-in scoring service; the push route's auth is the real one."""
    from worker.app import create_app

    class Service:
        pipeline = None

        def handle(self, data: bytes, attributes: dict, message_id: str) -> str:
            return "scored"

    return create_app(
        CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(tmp_path)}),
        WorkerSettings.from_env(env),
        Service(),  # type: ignore[arg-type]
        LocalTelemetry(tmp_path),
        GoogleTokenVerifier(certificates.url),
    )


def test_the_push_route_takes_only_the_push_account_with_a_verified_email(
    tmp_path, google_key, certificates
) -> None:
    env = {"PUSH_AUTH_AUDIENCE": WORKER_URL, "PUSH_AUTH_SERVICE_ACCOUNT": PUSH_ACCOUNT}
    client = _push_app(tmp_path, env, certificates).test_client()
    envelope = {"message": {"data": base64.b64encode(b"{}").decode(), "messageId": "m1"}}

    def push(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.post("/pubsub/push", json=envelope, headers=headers).status_code

    assert push(google_key.token(WORKER_URL, PUSH_ACCOUNT)) == 204
    assert push(None) == 401
    assert push(google_key.token(WORKER_URL, "someone@gmail.com")) == 401  # any Google account: no
    assert push(google_key.token(WORKER_URL, PUSH_ACCOUNT, email_verified=False)) == 401
    assert push(google_key.token(WORKER_URL, PUSH_ACCOUNT, email_verified="true")) == 401
    assert push(google_key.token("https://elsewhere", PUSH_ACCOUNT)) == 401
    assert certificates.fetches == 1


def test_an_audience_without_an_account_is_refused_unless_explicitly_allowed(
    tmp_path, google_key, certificates
) -> None:
    with pytest.raises(SettingsError, match="PUSH_AUTH_SERVICE_ACCOUNT"):
        _push_app(tmp_path, {"PUSH_AUTH_AUDIENCE": WORKER_URL}, certificates)
    allowed = {"PUSH_AUTH_AUDIENCE": WORKER_URL, "PUSH_AUTH_ALLOW_ANY_ACCOUNT": "true"}
    client = _push_app(tmp_path, allowed, certificates).test_client()
    envelope = {"message": {"data": base64.b64encode(b"{}").decode(), "messageId": "m1"}}
    headers = {"Authorization": f"Bearer {google_key.token(WORKER_URL, 'someone@gmail.com')}"}
    assert client.post("/pubsub/push", json=envelope, headers=headers).status_code == 204


@pytest.mark.parametrize(
    ("arguments", "variable"),
    [(["worker", "--mode", "push"], "PUSH_AUTH_AUDIENCE"), (["detect"], "DETECTION_FEED_AUTH_AUDIENCE")],
)
def test_the_stream_commands_refuse_to_start_with_an_audience_but_no_account(
    tmp_path, arguments, variable
) -> None:
    env = dict(os.environ, BUZZWATCH_VAR_DIR=str(tmp_path), PORT=str(free_port()))
    env[variable] = WORKER_URL
    result = subprocess.run(
        [sys.executable, "-m", "buzzwatch.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert variable.replace("AUDIENCE", "SERVICE_ACCOUNT") in result.stderr
    assert "Traceback" not in result.stderr


def _get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_detection_feed_binds_loopback_and_takes_only_the_app_account(
    tmp_path, google_key, certificates
) -> None:
    from worker.detection_service.server import serve_health
    from worker.detection_service.service import DetectionService
    from worker.detection_service.store import DetectionStore

    detection_url = "https://buzzwatch-detection-abc.a.run.app"
    policy = IdTokenPolicy.from_env(
        {"DETECTION_FEED_AUTH_AUDIENCE": detection_url, "DETECTION_FEED_AUTH_SERVICE_ACCOUNT": APP_ACCOUNT},
        "DETECTION_FEED_AUTH",
    )
    feed = RecordingTelemetry(LocalTelemetry(tmp_path))
    feed.metric("tweets_scored", 1, {"brand": "acme", "label": "negative"})
    port = free_port()
    store = DetectionStore(f"sqlite:///{tmp_path / 'buzzwatch.db'}")
    server = serve_health(
        port,
        DetectionService(store, None, feed),  # type: ignore[arg-type]
        feed,
        feed_auth=policy,
        verifier=GoogleTokenVerifier(certificates.url),
    )
    try:
        assert server.server_address[0] == "127.0.0.1"
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/healthz") == 200  # the platform's probe needs no token
        assert _get(f"{base}/v1/watch/metrics") == 401
        assert _get(f"{base}/v1/watch/metrics", google_key.token(detection_url, "someone@gmail.com")) == 401
        assert _get(f"{base}/v1/watch/metrics", google_key.token(WORKER_URL, APP_ACCOUNT)) == 401
        assert _get(f"{base}/v1/watch/metrics", google_key.token(detection_url, APP_ACCOUNT)) == 200
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def test_the_detection_feed_binds_what_the_container_asks() -> None:
    from worker.detection_service.settings import DetectionSettings

    assert DetectionSettings.from_env({}).health_host == "127.0.0.1"
    assert DetectionSettings.from_env({"DETECTION_HOST": "0.0.0.0"}).health_host == "0.0.0.0"
