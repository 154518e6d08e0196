"""Detection in one place: the single consumer of the scored topic that counts, detects and alerts.

Why one place: a window split across scoring instances would see part of a bad buzz each, and each instance
would alert on its own. So scoring scales out, and exactly one detection service (a single pull subscriber;
on Cloud Run a service with min = max instances = 1 and CPU always allocated) runs `BuzzDetector` in event
time over every scored tweet (or, with DETECTION_PARTITIONS, over the brands of the partitions it owns).

The package, one module per thing, wired by the entry point (`buzzwatch detect`, or
`python -m worker.detection_service`):
- `settings`: `DetectionSettings`, read from the environment once, at the entry point;
- `store`: the durable seen-id store, the detector state and the alert outbox (SQLAlchemy);
- `service`: `DetectionService`, which dedupes, detects and commits, the idle watermark, the crash points;
- `consumer`: `DetectionConsumer`, the Pub/Sub side of exactly-once: pull, process, hold the acks, commit
  on its rhythm, then ack;
- `dispatcher`: `AlertDispatcher`, which spools an alert's mail and records its event (no network);
- `server`: `/healthz` with each brand's phase, and the feed the app's Watch it page reads;
- `cli`: the entry point, which builds all of the above from `DetectionSettings`.

The pure algorithm stays in `worker.detection`: this package only feeds it and keeps what it says.

Exactly-once counting over at-least-once delivery: messages are processed in memory and their acks are
held; every `checkpoint_interval_s` (or `checkpoint_max_messages`) ONE database transaction stores the new
tweet ids (the durable seen-id store), the detector state and the alerts fired (an alert outbox); only then
are the held messages acknowledged and the alerts dispatched. A crash before the commit loses nothing: the
messages come again and the detector resumes from the last committed state, so each tweet is counted once;
a redelivery after the commit is recognised by its id. A failed commit reloads the last committed state. If
two detection services ran by mistake, the primary key on tweet ids makes the second commit fail, so a
tweet can still not be counted twice.
"""
