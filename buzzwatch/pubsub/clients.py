"""Where every Pub/Sub client of the adapter is made: at an emulator named explicitly, else as the library
chooses (PUBSUB_EMULATOR_HOST, else Google Cloud with Application Default Credentials).

An explicit emulator host lets a caller (the local stack) point its own clients at the emulator without
setting PUBSUB_EMULATOR_HOST in its process environment. With neither an emulator nor Google credentials,
google.auth's `DefaultCredentialsError` becomes `PubSubCredentialsError`, a `SettingsError` whose one line
names both ways out; the commands print it instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import google.auth
import grpc
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from buzzwatch.settings import SettingsError

PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"


class PubSubCredentialsError(SettingsError):
    """No emulator is configured and no Google credentials were found."""


@contextmanager
def _credentials_required() -> Iterator[None]:
    """Turn google.auth's missing-credentials error into one line that says what to set."""
    try:
        yield
    except DefaultCredentialsError as exc:
        reason = " ".join(str(exc).split())
        raise PubSubCredentialsError(
            "no Pub/Sub to talk to: PUBSUB_EMULATOR_HOST is not set and no Google credentials were found "
            f"({reason}). For the local emulator run `buzzwatch emulator` and export "
            "PUBSUB_EMULATOR_HOST=127.0.0.1:8085; for Google Cloud configure Application Default Credentials "
            "(`gcloud auth application-default login`, or GOOGLE_APPLICATION_CREDENTIALS=KEY.json)"
        ) from None


class PubSubUnreachableError(SettingsError):
    """Pub/Sub did not answer within the start-up bound: where it was looked for, and what to do."""

    def __init__(self, emulator_host: str | None, waited_s: float, error: BaseException) -> None:
        reason = " ".join(str(error).split())[:300]
        if emulator_host:
            where = (
                f"the Pub/Sub emulator at PUBSUB_EMULATOR_HOST={emulator_host} did not answer within "
                f"{waited_s:g} s ({reason}). Is it running? Start it with `buzzwatch emulator --port "
                f"{emulator_host.rpartition(':')[2]}`, or unset PUBSUB_EMULATOR_HOST to use Google Cloud"
            )
        else:
            where = (
                f"Google Cloud Pub/Sub did not answer within {waited_s:g} s ({reason}); check the network, "
                "or set PUBSUB_EMULATOR_HOST for the local emulator"
            )
        super().__init__(where)


def check_credentials(emulator_host: str | None) -> None:
    """Fail now, with the one-line error, where the clients will be made later in other processes."""
    if emulator_host:
        return
    with _credentials_required():
        google.auth.default(scopes=[PUBSUB_SCOPE])


def publisher_client(emulator_host: str | None = None, **options: Any) -> pubsub_v1.PublisherClient:
    """A publisher client (`options`: batch_settings, publisher_options) at `emulator_host` if given."""
    with _credentials_required():
        if emulator_host:
            transport = PublisherGrpcTransport(
                host=emulator_host, channel=grpc.insecure_channel(emulator_host)
            )
            return pubsub_v1.PublisherClient(transport=transport, **options)
        return pubsub_v1.PublisherClient(**options)


def subscriber_client(emulator_host: str | None = None) -> pubsub_v1.SubscriberClient:
    """A subscriber client at `emulator_host` if given."""
    with _credentials_required():
        if emulator_host:
            transport = SubscriberGrpcTransport(
                host=emulator_host, channel=grpc.insecure_channel(emulator_host)
            )
            return pubsub_v1.SubscriberClient(transport=transport)
        return pubsub_v1.SubscriberClient()
