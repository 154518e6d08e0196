"""Token vocabulary and the padding scheme shared by training and serving.

Serving pads each tweet to a *length bucket* chosen from its own token count only (a multiple of
`bucket_size`, capped at `max_length`). Training pads exactly the same way, so a tweet gets the same
padded input, hence the same probabilities, whatever batch it is scored in, and short tweets cost
fewer LSTM steps. Only numpy here: the serving path imports this module.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
PAD_ID = 0
UNK_ID = 1


class Vocabulary:
    """A fixed token -> id map; id 0 pads, id 1 stands for every unknown token."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if len(tokens) < 2 or tokens[PAD_ID] != PAD_TOKEN or tokens[UNK_ID] != UNK_TOKEN:
            raise ValueError("a vocabulary starts with the <pad> and <unk> tokens")
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.index: dict[str, int] = {token: position for position, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], *, min_count: int = 2, max_size: int = 20_000
    ) -> Vocabulary:
        """The most frequent tokens (ties broken alphabetically, so the result is deterministic)."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        counts.pop(PAD_TOKEN, None)
        counts.pop(UNK_TOKEN, None)
        ranked = sorted(
            (item for item in counts.items() if item[1] >= min_count), key=lambda i: (-i[1], i[0])
        )
        kept = [token for token, _ in ranked[: max(0, max_size - 2)]]
        return cls([PAD_TOKEN, UNK_TOKEN, *kept])

    def encode(self, tokens: Sequence[str], max_length: int) -> list[int]:
        """Token ids, unknown tokens as UNK_ID, truncated to max_length (the first tokens are kept)."""
        lookup = self.index.get
        return [lookup(token, UNK_ID) for token in tokens[:max_length]]

    def save(self, path: Path) -> None:
        """Write the tokens as a JSON list (one file, any token survives)."""
        Path(path).write_text(json.dumps(list(self.tokens), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a vocabulary written by `save`."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))


def bucket_length(n_tokens: int, bucket_size: int, max_length: int) -> int:
    """The padded length of a tweet of n_tokens: the next multiple of bucket_size, at most max_length."""
    if n_tokens <= 0:
        return min(bucket_size, max_length)
    return min(max_length, -(-n_tokens // bucket_size) * bucket_size)


def pad_batch(id_lists: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """An int32 (n, length) matrix, ids first, PAD_ID after (post-padding)."""
    batch = np.full((len(id_lists), length), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(id_lists):
        batch[row, : len(ids)] = ids[:length]
    return batch


def group_by_bucket(
    id_lists: Sequence[Sequence[int]], bucket_size: int, max_length: int
) -> dict[int, list[int]]:
    """Row indices grouped by their bucket length."""
    groups: dict[int, list[int]] = {}
    for row, ids in enumerate(id_lists):
        groups.setdefault(bucket_length(len(ids), bucket_size, max_length), []).append(row)
    return groups
