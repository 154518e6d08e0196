"""Bad-buzz detection: pure, event-time code over plain data (no I/O), shared by the worker and `replay`."""

from worker.detection.config import BrandParams, DetectorConfig
from worker.detection.detector import BuzzDetector
from worker.detection.explain import TweetRecord, copy_key, explain

__all__ = ["BrandParams", "BuzzDetector", "DetectorConfig", "TweetRecord", "copy_key", "explain"]
