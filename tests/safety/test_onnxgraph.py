"""Compiled graphs are refused before onnxruntime loads them when they are hostile."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.errors import CorruptData
from core.safety.onnxgraph import check_graph, open_session


def _model(nodes, inits=(), opsets=(("", 17),), inputs=None, functions=()):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 1])]
    graph = helper.make_graph(list(nodes), "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [None, 1])],
                              initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
                             functions=list(functions))


def _identity():
    return _model([helper.make_node("Identity", ["x"], ["y"])])


def test_a_plain_graph_loads_and_runs():
    session = open_session(_identity().SerializeToString())
    out = session.run(None, {"x": np.array([[1.5]])})[0]
    assert out.tolist() == [[1.5]]


def test_a_custom_operator_domain_is_refused():
    m = _model([helper.make_node("Evil", ["x"], ["y"], domain="com.attacker")],
               opsets=(("", 17), ("com.attacker", 1)))
    with pytest.raises(CorruptData, match="operator set 'com.attacker'"):
        check_graph(m.SerializeToString())


def test_a_custom_node_domain_without_its_opset_is_refused():
    m = _model([helper.make_node("Evil", ["x"], ["y"], domain="com.attacker")])
    with pytest.raises(CorruptData, match="com.attacker.Evil.*not in the standard sets"):
        check_graph(m.SerializeToString())


def test_a_custom_op_hidden_in_a_subgraph_is_refused():
    inner = helper.make_graph([helper.make_node("Evil", ["x"], ["z"], domain="com.attacker")],
                              "inner", [], [helper.make_tensor_value_info("z", TensorProto.DOUBLE,
                                                                          [None, 1])])
    cond = numpy_helper.from_array(np.array(True), "c")
    m = _model([helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=inner)],
               inits=[cond])
    with pytest.raises(CorruptData, match="com.attacker"):
        check_graph(m.SerializeToString())


def test_model_local_functions_are_refused():
    body = [helper.make_node("Identity", ["a"], ["b"])]
    fn = helper.make_function("", "Mine", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    m = _model([helper.make_node("Identity", ["x"], ["y"])], functions=[fn])
    with pytest.raises(CorruptData, match="defines its own functions"):
        check_graph(m.SerializeToString())


@pytest.mark.parametrize("location", ["../../../../etc/passwd", "/etc/shadow", "weights.bin"])
def test_external_data_is_refused_whatever_the_path(location):
    w = numpy_helper.from_array(np.ones((1, 1)), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    m = _model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[w])
    with pytest.raises(CorruptData, match="keeps its data outside the file"):
        open_session(m.SerializeToString())


def test_an_absurd_declared_tensor_size_is_refused_before_allocation():
    w = TensorProto(name="w", data_type=TensorProto.DOUBLE, dims=[1 << 20, 1 << 20])
    m = _model([helper.make_node("Add", ["x", "w"], ["y"])], inits=[w])
    with pytest.raises(CorruptData, match="declares 1,099,511,627,776 elements"):
        check_graph(m.SerializeToString())


def test_a_file_over_the_size_limit_is_refused_unparsed():
    raw = _identity().SerializeToString()
    with pytest.raises(CorruptData, match="over the limit"):
        check_graph(raw, max_bytes=len(raw) - 1)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 10, b"not a graph at all" * 100,
                                 b"\xff\xff\xff\xff\x0f"])
def test_garbage_is_refused_with_a_clear_error(raw):
    with pytest.raises(CorruptData, match="refused"):
        open_session(raw)


def test_a_graph_onnxruntime_cannot_type_is_refused_not_crashing():
    m = _model([helper.make_node("Add", ["x", "missing"], ["y"])])
    with pytest.raises(CorruptData, match="onnxruntime could not load it"):
        open_session(m.SerializeToString())


def test_check_graph_returns_the_parsed_model():
    assert isinstance(check_graph(_identity().SerializeToString()), onnx.ModelProto)
