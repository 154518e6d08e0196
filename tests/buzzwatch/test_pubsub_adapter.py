"""One Pub/Sub adapter: only `buzzwatch/pubsub/` publishes, pulls or acks through the client library."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "buzzwatch" / "pubsub"
# The services' code (bench/ is left out: its baselines call the library directly on purpose).
SOURCES = ("buzzwatch", "worker", "ingest", "api", "streamlit_app", "models", "stack")
# Calls on the client library that move messages; anything else (create/delete a topic) is administration.
RAW_CALLS = {"pull", "acknowledge", "modify_ack_deadline", "subscribe", "streaming_pull"}


def _raw_pubsub_calls(path: Path, root: Path = REPO) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = ast.unparse(node.func.value)
        name = node.func.attr
        low_level_publish = name == "publish" and (owner.endswith(".api") or "client" in owner.lower())
        if name in RAW_CALLS or low_level_publish:
            found.append(f"{path.relative_to(root)}:{node.lineno} {owner}.{name}(...)")
    return found


def _service_files() -> list[Path]:
    return [
        path
        for folder in SOURCES
        if (REPO / folder).is_dir()
        for path in sorted((REPO / folder).rglob("*.py"))
        if ADAPTER not in path.parents
    ]


def test_only_the_adapter_publishes_pulls_or_acks_through_the_client_library() -> None:
    offenders = [call for path in _service_files() for call in _raw_pubsub_calls(path)]
    assert offenders == [], "use buzzwatch.pubsub (Publisher, pull_loop, pull_batch, ack, nack) instead"


def test_the_check_sees_a_second_publisher_or_pull_loop(tmp_path: Path) -> None:
    """The scan finds what it is meant to find: a copy of the old ConfirmedPublisher and pull helpers."""
    sample = tmp_path / "second.py"
    sample.write_text(
        "def send(client, topic, messages):\n"
        "    return client.api.publish(topic=topic, messages=messages)\n"
        "def take(client, path):\n"
        "    client.acknowledge(request={'subscription': path, 'ack_ids': []})\n"
        "    return client.pull(request={'subscription': path, 'max_messages': 10})\n",
        encoding="utf-8",
    )
    assert _raw_pubsub_calls(sample, tmp_path) == [
        "second.py:2 client.api.publish(...)",
        "second.py:4 client.acknowledge(...)",
        "second.py:5 client.pull(...)",
    ]


def test_only_the_clients_module_makes_pubsub_clients() -> None:
    """So each one gets the explicit emulator host and the one-line error for missing credentials."""
    makers = ("PublisherClient", "SubscriberClient")
    offenders = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for folder in SOURCES
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != ADAPTER / "clients.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(makers)
    ]
    assert offenders == [], "make clients with buzzwatch.pubsub.publisher_client / subscriber_client"
