"""ONNX graphs are data, not code, but still hostile input until checked.

A stored ``.onnx`` file is parsed and checked before onnxruntime ever sees it:

- only operators of the standard sets (``ai.onnx`` and ``ai.onnx.ml``) are allowed: a
  custom domain would make onnxruntime look for a custom-op library, and model-local
  functions are refused for the same reason;
- no tensor may keep its data outside the file (``external_data``): onnxruntime would
  open whatever path it names, relative to anywhere (``../../etc/passwd``);
- the file, the node count and every tensor's declared size are bounded, so a crafted
  graph cannot ask for terabytes or hours before the first request.

The session runs with one thread per call (the server runs one call at a time, and the
machine's other cores serve other requests), and with onnxruntime's own graph
optimisations.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from core.errors import CorruptData

# The operator sets onnxruntime implements itself; anything else needs a custom library.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
# A compiled scikit-learn pipeline of a few hundred trees has ~30 nodes (trees are one
# node each); a million is no model we write.
MAX_NODES = 1_000_000
# Elements any one tensor may declare (2**31: 8 GiB of doubles, far past a real model).
MAX_ELEMENTS = 1 << 31
# Bytes of a whole graph file.
MAX_GRAPH_BYTES = 1 << 30
MAX_DEPTH = 16


def _refuse(why: str) -> CorruptData:
    return CorruptData(f"The compiled graph (.onnx) was refused: {why}. Compile the version "
                       "again with 'python -m core compile NAME@VERSION', or serve it with "
                       "--engine sklearn.")


def check_graph(raw: bytes, max_bytes: int = MAX_GRAPH_BYTES) -> Any:
    """The parsed ``onnx.ModelProto`` of ``raw``, or CorruptData saying what is wrong."""
    import onnx
    from google.protobuf.message import DecodeError

    if len(raw) > max_bytes:
        raise _refuse(f"it is {len(raw):,} bytes, over the limit of {max_bytes:,}")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise _refuse(f"it is not an ONNX model ({type(exc).__name__})") from None
    if not model.HasField("graph"):
        raise _refuse("it holds no graph")
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise _refuse(f"it imports the operator set {opset.domain[:80]!r}, which is not "
                          "one of the standard sets (ai.onnx, ai.onnx.ml)")
    if len(model.functions):
        raise _refuse("it defines its own functions; only standard operators are allowed")
    nodes = 0
    for graph in _graphs(model.graph, 0):
        for tensor in _tensors(graph):
            _check_tensor(tensor)
        for node in graph.node:
            nodes += 1
            if nodes > MAX_NODES:
                raise _refuse(f"it has more than {MAX_NODES:,} nodes")
            if node.domain not in STANDARD_DOMAINS:
                raise _refuse(f"node {node.name[:80]!r} uses operator "
                              f"{node.domain[:80]}.{node.op_type[:80]}, which is not in the "
                              "standard sets (ai.onnx, ai.onnx.ml)")
    return model


def _graphs(graph: Any, depth: int) -> Iterator[Any]:
    """``graph`` and every subgraph held in a node attribute (If, Loop, Scan)."""
    if depth > MAX_DEPTH:
        raise _refuse(f"its subgraphs nest more than {MAX_DEPTH} levels deep")
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g, depth + 1)
            for sub in attr.graphs:
                yield from _graphs(sub, depth + 1)


def _tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices


def _check_tensor(tensor: Any) -> None:
    import onnx

    name = tensor.name[:80]
    if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
        where = next((e.value for e in tensor.external_data if e.key == "location"), "")
        raise _refuse(f"tensor {name!r} keeps its data outside the file "
                      f"({where[:120]!r}); a compiled graph must hold all its data")
    if any(d < 0 for d in tensor.dims):
        raise _refuse(f"tensor {name!r} has a negative dimension")
    if math.prod(tensor.dims) > MAX_ELEMENTS:
        raise _refuse(f"tensor {name!r} declares {math.prod(tensor.dims):,} elements, over "
                      f"the limit of {MAX_ELEMENTS:,}")


def open_session(raw: bytes) -> Any:
    """An onnxruntime session for a checked graph (CPU, one thread per call)."""
    import onnxruntime as ort

    check_graph(raw)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(raw, options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own checks: types, shapes, unknown operators
        text = " ".join(str(exc).split())[:300]
        raise _refuse(f"onnxruntime could not load it ({text})") from None
