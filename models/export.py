"""Export a trained Keras LSTM to the serving artifact (ONNX + vocabulary + metadata).

tf2onnx `from_function` on a `tf.function` with a (None, None) int32 signature: dynamic batch and
sequence length; the bidirectional LSTM becomes one fused ONNX `LSTM` op. Training code only.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from models.linear import PAD_FEATURE
from models.predictor import ARTIFACT_FORMAT, ONNX_FILE, OOV_INPUT, VOCAB_FILE, Predictor, write_meta
from models.subwords import SubwordTable
from models.text import NORMALISER_VERSION
from models.vocab import Vocabulary

OPSET = 17
ML_OPSET = 2  # ai.onnx.ml: LabelEncoder with int64 keys and values


def export_onnx(model: keras.Model, path: Path, opset: int = OPSET) -> Path:
    """Write the model as ONNX with input `token_ids` (batch, length) and output `probabilities`."""
    import tensorflow as tf
    import tf2onnx

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    def serve(token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(token_ids, training=False)}

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_function(
        serve, input_signature=serve.input_signature, opset=opset, output_path=str(path)
    )
    return path


def file_digest(path: Path) -> str:
    """sha256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_artifact(
    out_dir: Path,
    model: keras.Model,
    vocab: Vocabulary,
    *,
    labels: Sequence[str],
    max_length: int,
    bucket_size: int,
    metrics: Mapping[str, Any],
    details: Mapping[str, Any],
    name: str = "bilstm",
    subwords: SubwordTable | None = None,
) -> dict[str, Any]:
    """Write model.onnx, vocab.json and meta.json into out_dir (replacing what was there); return meta.

    The model version is `<name>-<first 10 hex of the ONNX file's sha256>`: the same weights give the
    same version, and any retrain that changes them gives a new one. With `subwords` (a model trained with
    frozen FastText rows for its unknown tokens) the graph takes their vectors too (`add_oov_input`) and
    `subwords.npz` ships beside it; the model's embedding may have more rows than the vocabulary (the
    training texts' unknown tokens), which the export drops.
    """
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    export_onnx(model, staging / ONNX_FILE)
    prune_graph(staging / ONNX_FILE, len(vocab))
    if subwords is not None:
        add_oov_input(staging / ONNX_FILE, len(vocab))
        subwords.save(staging)
    vocab.save(staging / VOCAB_FILE)
    meta = {
        "format": ARTIFACT_FORMAT,
        "model_version": f"{name}-{file_digest(staging / ONNX_FILE)[:10]}",
        "labels": list(labels),
        "normaliser_version": NORMALISER_VERSION,
        "max_length": int(max_length),
        "bucket_size": int(bucket_size),
        "vocab_size": len(vocab),
        "input": "token_ids",
        "output": "probabilities",
        "padding": "post, to the tweet's own length bucket",
        "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "metrics": dict(metrics),
        "details": dict(details),
    }
    if subwords is not None:
        meta["subwords"] = {
            "buckets": len(subwords.ngram_vectors),
            "min_n": subwords.min_n,
            "max_n": subwords.max_n,
        }
    write_meta(staging, meta)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return meta


def _vocabulary_lookups(graph: Any, vocab_size: int) -> list[Any]:
    """The graph's per-token lookups: Gathers from a 2-D initializer of at least `vocab_size` rows (the
    embedding, and a lexicon valence table when the model has one)."""
    initializers = {item.name: item for item in graph.initializer}
    return [
        node
        for node in graph.node
        if node.op_type == "Gather"
        and node.input[0] in initializers
        and len(initializers[node.input[0]].dims) == 2
        and initializers[node.input[0]].dims[0] >= vocab_size
    ]


def _embedding_lookup(graph: Any, vocab_size: int, onnx_path: Path) -> Any:
    """The graph's one embedding lookup (a graph with a second per-token table is refused)."""
    lookups = _vocabulary_lookups(graph, vocab_size)
    if len(lookups) != 1:
        raise ValueError(f"expected one embedding lookup in {onnx_path}, found {len(lookups)}")
    return lookups[0]


# What tf2onnx writes to wrap negative ids (`where(id < 0, id + rows, id)`) and to build the LSTM's zero
# initial states from the batch's shape: `prune_graph` removes such subgraphs, and only those.
ID_WRAP_OPS = frozenset({"Add", "Cast", "Less", "Not", "Mul", "Where"})
ZERO_STATE_OPS = frozenset({"Shape", "Cast", "Slice", "Concat", "Unsqueeze", "Squeeze", "Expand"})


def _ancestors(graph: Any, name: str) -> tuple[list[Any], set[str]]:
    """The nodes that compute tensor `name`, and the names they read that no node makes (inputs, weights).

    A Shape node reads no values, so what computes its input is not followed.
    """
    producer = {output: node for node in graph.node for output in node.output}
    nodes, leaves, pending, seen = [], set(), [name], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        node = producer.get(current)
        if node is None:
            leaves.add(current)
            continue
        nodes.append(node)
        if node.op_type != "Shape":
            pending.extend(item for item in node.input if item)
    return nodes, leaves


def prune_graph(onnx_path: Path, vocab_size: int) -> int:
    """Remove what an exported LSTM graph computes that serving never needs; return the nodes removed.

    tf2onnx writes Keras's wrap of negative ids before the embedding lookups (9 nodes) and builds the
    LSTM's zero initial states from the batch's shape (8 nodes). The Predictor never feeds a negative id,
    and the ONNX LSTM starts from zeros when its initial states are left out, so the lookup reads
    `token_ids` and the states go. A tweet scored alone pays every node's fixed cost (about a microsecond
    each). The probabilities must stay bit for bit those of the graph before, on a probe batch of every
    id, or nothing is written (ValueError).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    before = len(graph.node)
    token_input = graph.input[0].name
    weights = {item.name: item for item in graph.initializer}
    lookups = _vocabulary_lookups(graph, vocab_size)
    if not lookups:
        raise ValueError(f"no embedding lookup in {onnx_path}")
    for lookup in lookups:
        wrap, leaves = _ancestors(graph, lookup.input[1])
        if wrap and {node.op_type for node in wrap} <= ID_WRAP_OPS and leaves - set(weights) == {token_input}:
            lookup.input[1] = token_input
    for node in graph.node:
        if node.op_type != "LSTM" or len(node.input) <= 5:
            continue
        states, leaves = _ancestors(graph, node.input[5])
        expanded = [item.input[0] for item in states if item.op_type == "Expand"]
        zeros = bool(expanded) and all(
            name in weights and not numpy_helper.to_array(weights[name]).any() for name in expanded
        )
        if (
            zeros
            and leaves <= set(weights)
            and {item.op_type for item in states} <= ZERO_STATE_OPS
            and node.input[6] == node.input[5]
            and len(node.input) == 7
        ):
            del node.input[5:]
    _drop_unused(graph)
    removed = before - len(graph.node)
    if removed:
        original = onnx.load(str(onnx_path))
        probe = _probe_ids(vocab_size)
        if not np.array_equal(_run_graph(original, probe), _run_graph(model, probe)):
            raise ValueError(f"pruning {onnx_path} would change its probabilities; left as it was")
        onnx.checker.check_model(model)
        onnx.save(model, str(onnx_path))
    return removed


def _drop_unused(graph: Any) -> None:
    """Remove the nodes whose outputs nothing reads, then the initializers nothing reads."""
    while True:
        read = {output.name for output in graph.output} | {name for node in graph.node for name in node.input}
        kept = [node for node in graph.node if any(output in read for output in node.output)]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    unused = [item for item in graph.initializer if item.name not in read]
    for item in unused:
        graph.initializer.remove(item)


def _probe_ids(vocab_size: int) -> np.ndarray:
    """Every id below `vocab_size` once (then padding), in rows of 24: a batch of ordinary lengths."""
    ids = np.arange(vocab_size, dtype=np.int32)
    ids = np.concatenate([ids, np.zeros(-len(ids) % 24, dtype=np.int32)])
    return ids.reshape(-1, 24)


def _run_graph(model: Any, token_ids: np.ndarray) -> np.ndarray:
    """The first output of an in-memory ONNX model on a batch of token ids (ONNX Runtime, one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {model.graph.input[0].name: token_ids})[0]


def add_oov_input(onnx_path: Path, vocab_size: int) -> None:
    """Give an exported LSTM graph a second input, `oov_vectors` (n, dim): the embedding of unknown tokens.

    Ids below `vocab_size` read the embedding as before; id `vocab_size + k` reads row k of `oov_vectors`
    (row 0 is zeros, what the vocabulary's ids read there). The embedding keeps its first `vocab_size`
    rows and a zero row: embedded = E[min(id, V)] + oov_vectors[max(id - V, 0)], two gathers and an add.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    initializers = {item.name: item for item in graph.initializer}
    lookup = _embedding_lookup(graph, vocab_size, onnx_path)
    table = numpy_helper.to_array(initializers[lookup.input[0]])
    kept = np.vstack([table[:vocab_size], np.zeros((1, table.shape[1]), dtype=table.dtype)])
    initializers[lookup.input[0]].CopyFrom(numpy_helper.from_array(kept, lookup.input[0]))
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(vocab_size, dtype=np.int32), "oov_first_id"),
            numpy_helper.from_array(np.array(0, dtype=np.int32), "oov_zero"),
        ]
    )
    embedded, ids = lookup.output[0], lookup.input[1]
    lookup.input[1] = "vocabulary_ids"
    lookup.output[0] = "vocabulary_embedded"
    nodes = [
        ("Min", [ids, "oov_first_id"], ["vocabulary_ids"]),
        ("Sub", [ids, "oov_first_id"], ["oov_offsets"]),
        ("Max", ["oov_offsets", "oov_zero"], ["oov_rows"]),
        ("Gather", [OOV_INPUT, "oov_rows"], ["oov_embedded"]),
        ("Add", ["vocabulary_embedded", "oov_embedded"], [embedded]),
    ]
    position = list(graph.node).index(lookup)
    ordered = [onnx.NodeProto() for _ in graph.node]
    for copy, node in zip(ordered, graph.node, strict=True):
        copy.CopyFrom(node)
    # The new nodes around the lookup: its inputs before it, the consumer of its output after it.
    new_nodes = [helper.make_node(op, inputs, outputs) for op, inputs, outputs in nodes]
    ordered[position : position + 1] = [*new_nodes[:-1], ordered[position], new_nodes[-1]]
    del graph.node[:]
    graph.node.extend(ordered)
    graph.input.append(helper.make_tensor_value_info(OOV_INPUT, TensorProto.FLOAT, [None, table.shape[1]]))
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def parity_gap(
    model: keras.Model,
    predictor: Predictor,
    texts: Sequence[str],
    keras_ids: Sequence[Sequence[int]] | None = None,
) -> float:
    """Largest absolute difference between Keras and ONNX probabilities on the same texts.

    `keras_ids`: the texts as the Keras model reads them, when its ids differ from the artifact's (a model
    trained with sub-word rows for unknown tokens).
    """
    from models.lstm import LstmConfig, predict_proba

    config = LstmConfig(max_length=predictor.max_length, bucket_size=predictor.bucket_size)
    if keras_ids is None:
        keras_ids = predictor.encode(texts)
    keras_probabilities = predict_proba(model, keras_ids, config)
    onnx_probabilities = predictor.predict_proba(texts)
    return float(np.max(np.abs(keras_probabilities - onnx_probabilities)))


def fuse_ensemble(
    lstm_onnx: Path,
    linear: Any,
    linear_weight: float,
    temperature: float,
    out_path: Path,
    class_offsets: np.ndarray | None = None,
) -> Path:
    """One ONNX graph: the LSTM and the linear model side by side, soft vote, temperature scaling and
    per-class logit offsets (zeros when None).

    Inputs `token_ids` (batch, length) and `ngram_keys` (batch, n; `models.linear.LinearModel.ngram_keys`,
    int64, PAD_KEY pads); outputs `probabilities` (the ensemble's, calibrated) and `sequence_probabilities`
    (the LSTM's alone). The keys become feature ids through an ai.onnx.ml LabelEncoder (a hash map in ONNX
    Runtime); the arithmetic is `models.predictor.combine` over `models.linear.LinearModel.logits`.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(lstm_onnx))
    graph = model.graph
    lstm_output = graph.output[0].name
    for node in graph.node:
        node.output[:] = ["sequence_probabilities" if name == lstm_output else name for name in node.output]
    weighted, squares = linear.tables()
    table_keys, table_ids = linear.key_table
    constants = {
        "linear_weighted": weighted,
        "linear_idf_squares": squares,
        "linear_intercepts": linear.intercepts.astype(np.float32),
        "sum_axis": np.array([1], dtype=np.int64),
        "norm_floor": np.array(1e-12, dtype=np.float32),
        "sequence_share": np.array(1.0 - linear_weight, dtype=np.float32),
        "linear_share": np.array(linear_weight, dtype=np.float32),
        "temperature": np.array(temperature, dtype=np.float32),
        "class_offsets": np.zeros(weighted.shape[1], dtype=np.float32)
        if class_offsets is None
        else np.asarray(class_offsets, dtype=np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
    encoder = helper.make_node(
        "LabelEncoder",
        ["ngram_keys"],
        ["feature_ids"],
        domain="ai.onnx.ml",
        keys_int64s=table_keys.tolist(),
        values_int64s=table_ids.tolist(),
        default_int64=int(PAD_FEATURE),
    )
    nodes = [
        ("Gather", ["linear_weighted", "feature_ids"], ["rows"], {}),
        ("ReduceSum", ["rows", "sum_axis"], ["row_sum"], {"keepdims": 0}),
        ("Gather", ["linear_idf_squares", "feature_ids"], ["squares"], {}),
        ("ReduceSum", ["squares", "sum_axis"], ["square_sum"], {"keepdims": 1}),
        ("Max", ["square_sum", "norm_floor"], ["square_sum_floored"], {}),
        ("Sqrt", ["square_sum_floored"], ["norm"], {}),
        ("Div", ["row_sum", "norm"], ["scaled"], {}),
        ("Add", ["scaled", "linear_intercepts"], ["linear_logits"], {}),
        ("Softmax", ["linear_logits"], ["linear_probabilities"], {"axis": 1}),
        ("Mul", ["sequence_probabilities", "sequence_share"], ["sequence_part"], {}),
        ("Mul", ["linear_probabilities", "linear_share"], ["linear_part"], {}),
        ("Add", ["sequence_part", "linear_part"], ["mixed"], {}),
        ("Max", ["mixed", "norm_floor"], ["mixed_floored"], {}),
        ("Log", ["mixed_floored"], ["log_mixed"], {}),
        ("Div", ["log_mixed", "temperature"], ["tempered"], {}),
        ("Add", ["tempered", "class_offsets"], ["offset_logits"], {}),
        ("Softmax", ["offset_logits"], [lstm_output], {"axis": 1}),
    ]
    graph.node.append(encoder)
    graph.node.extend(helper.make_node(op, inputs, outputs, **attrs) for op, inputs, outputs, attrs in nodes)
    graph.input.append(helper.make_tensor_value_info("ngram_keys", TensorProto.INT64, [None, None]))
    if not any(entry.domain == "ai.onnx.ml" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    n_labels = int(weighted.shape[1])
    graph.output.append(
        helper.make_tensor_value_info("sequence_probabilities", TensorProto.FLOAT, [None, n_labels])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path
