"""Crafted ONNX files for tests/corpus.rs and the `onnx` fuzz target (fuzz/seed.sh copies them).

    bench/.venv/bin/python tests/corpus/make_onnx.py      (needs the onnx package; bench/onnx_families.py's venv)

Each file is small and built node by node with onnx.helper, so the test knows exactly what is wrong with it. The
expected one-line refusal of each is listed in tests/corpus.rs (`onnx_corpus_is_refused_or_loads`).
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def tensor(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def save(name, nodes, inits=(), inputs=None, outputs=None, opset=20, props=None, functions=()):
    inputs = inputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])]
    outputs = outputs or [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch"])]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], functions=list(functions)
    )
    model.ir_version = 8
    helper.set_model_props(model, props or {"walkjump.role": "energy", "walkjump.sigma": "1", "walkjump.shape": "1,2,2"})
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


rng = np.random.default_rng(0)
w1 = rng.normal(size=(8, 4)) * 0.5
w2 = rng.normal(size=(1, 8)) * 0.5
mlp_inits = [tensor("w1", w1), tensor("b1", np.zeros(8)), tensor("w2", w2), tensor("b2", np.zeros(1))]
mlp_nodes = [
    helper.make_node("Gemm", ["y", "w1", "b1"], ["h"], transB=1, name="fc1"),
    helper.make_node("Relu", ["h"], ["a"], name="act"),
    helper.make_node("Gemm", ["a", "w2", "b2"], ["e"], transB=1, name="fc2"),
    helper.make_node("Squeeze", ["e"], ["out"], name="squeeze"),
]

save("onnx-valid-mlp-energy.onnx", mlp_nodes, mlp_inits)
save("onnx-unsupported-op.onnx", [helper.make_node("Cos", ["y"], ["out"], name="cos")])
save("onnx-old-opset.onnx", mlp_nodes, mlp_inits, opset=5)
save("onnx-undefined-input.onnx", [helper.make_node("Add", ["y", "nowhere"], ["out"], name="add")])
save("onnx-reads-itself.onnx", [helper.make_node("Add", ["y", "out"], ["out"], name="loop")])
save(
    "onnx-two-inputs.onnx",
    mlp_nodes,
    mlp_inits,
    inputs=[
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
        helper.make_tensor_value_info("t", TensorProto.FLOAT, ["batch", 1]),
    ],
)
save(
    "onnx-unknown-shape.onnx",
    mlp_nodes,
    mlp_inits,
    inputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "d"])],
)
# A weight whose bytes do not match its shape.
bad = tensor("w1", w1)
bad.raw_data = bad.raw_data[:-4]
save("onnx-short-raw-data.onnx", mlp_nodes, [bad] + mlp_inits[1:])
# A weight kept in an external file.
ext = tensor("w1", w1)
ext.ClearField("raw_data")
ext.data_location = TensorProto.EXTERNAL
ext.external_data.add(key="location", value="weights.bin")
save("onnx-external-data.onnx", mlp_nodes, [ext] + mlp_inits[1:])
# An image network: convolutions dilated unevenly and negatively padded (cropping) ones are refused (grouped ones
# are read since session 11, uneven pads and dilation since session 12: see the onnx-valid-conv-* files).
img_in = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 4, 4])]
img_out = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2, 4, 4])]
wconv = tensor("wc", rng.normal(size=(2, 2, 3, 3)))
for name, attrs in [
    ("onnx-conv-dilated-unevenly.onnx", {"dilations": [2, 1], "pads": [2, 1, 2, 1]}),
    ("onnx-valid-conv-dilated.onnx", {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ("onnx-conv-negative-pads.onnx", {"pads": [1, -1, 1, 1]}),
    ("onnx-valid-conv-uneven-pads.onnx", {"pads": [1, 0, 1, 2]}),
]:
    save(
        name,
        [helper.make_node("Conv", ["y", "wc"], ["out"], name="conv", **attrs)],
        [wconv],
        inputs=img_in,
        outputs=img_out,
        props={"walkjump.role": "denoiser", "walkjump.sigma": "0.5", "walkjump.shape": "2,4,4"},
    )
save(
    "onnx-valid-conv-denoiser.onnx",
    [
        helper.make_node("Conv", ["y", "wc"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
        helper.make_node("Mul", ["c", "s"], ["out"], name="silu"),
    ],
    [wconv],
    inputs=img_in,
    outputs=img_out,
    props={"walkjump.role": "denoiser", "walkjump.sigma": "0.5", "walkjump.shape": "2,4,4"},
)
# Pad's wrap mode (opset 19) is refused.
save(
    "onnx-pad-wrap.onnx",
    [helper.make_node("Pad", ["y", "pads"], ["out"], name="pad", mode="wrap")],
    [numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads")],
    inputs=img_in,
    outputs=[helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2, 6, 6])],
    props={"walkjump.role": "energy", "walkjump.sigma": "0.5", "walkjump.shape": "2,4,4"},
)
save(
    "onnx-reshape-across-batch.onnx",
    [helper.make_node("Reshape", ["y", "shape"], ["out"], name="reshape")],
    [numpy_helper.from_array(np.array([-1], dtype=np.int64), "shape")],
)
save(
    "onnx-wrong-role.onnx",
    mlp_nodes,
    mlp_inits,
    props={"walkjump.role": "denoiser", "walkjump.sigma": "1", "walkjump.shape": "1,2,2"},
)
save("onnx-no-sigma.onnx", mlp_nodes, mlp_inits, props={"walkjump.role": "energy"})
fn = helper.make_function("local", "f", ["x"], ["z"], [helper.make_node("Relu", ["x"], ["z"])], [helper.make_opsetid("", 20)])
save("onnx-local-function.onnx", [helper.make_node("f", ["y"], ["out"], domain="local", name="call")], functions=[fn])
with open(os.path.join(HERE, "onnx-not-protobuf.onnx"), "wb") as f:
    f.write(b"\x08\x96\x01 this is not an onnx file \xff\xff\xff")
with open(os.path.join(HERE, "onnx-valid-mlp-energy.onnx"), "rb") as f:
    whole = f.read()
with open(os.path.join(HERE, "onnx-truncated.onnx"), "wb") as f:
    f.write(whole[: len(whole) // 2])
print("wrote", len([n for n in os.listdir(HERE) if n.startswith("onnx-")]), "onnx corpus files")
