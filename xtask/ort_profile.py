"""Where ONNX Runtime's time goes on an ONNX model, per kind of layer, next to `dynofa bench --per-op`.

Usage: python3 ort_profile.py MODEL.onnx THREADS ITERS — runs batch 1 with ONNX Runtime's
profiler (after 5 warm-up runs) and prints {"total_ms": …, "per_op_ms": {kind: ms per run}}
as JSON. Kinds come from each node's op type and input shapes, in `dynofa bench --per-op`'s
terms where they map: stem, expand (1×1 widening, the final expansion included), depthwise_kK,
project (1×1 narrowing), se_fc / se_gate (squeeze-and-excitation), pool, head_fc, and
ONNX Runtime's own layout reorders.
"""
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort

model, threads, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
r = session.get_inputs()[0].shape[2]
x = (((np.arange(3 * r * r) % 251).astype(np.float32) - 125.0) / 60.0).reshape(1, 3, r, r)
for _ in range(5):
    session.run(None, {"input": x})
options.enable_profiling = True
options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
for _ in range(5 + iters):
    session.run(None, {"input": x})
trace = json.load(open(session.end_profiling()))


def kind(op, shapes):
    """The kind of layer a node is, from its op type and its input shapes."""
    if op == "Conv" and len(shapes) >= 2:
        x, w = list(shapes[0].values())[0], list(shapes[1].values())[0]
        out_channels, in_per_group, kh = w[0], w[1], w[2]
        if kh > 1:
            return "stem" if in_per_group > 1 else f"depthwise_k{kh}"
        if x[2] == 1:
            return "se_fc"
        return "expand" if out_channels > x[1] else "project"
    return {"Mul": "se_gate", "GlobalAveragePool": "pool", "Gemm": "head_fc", "ReorderInput": "reorder", "ReorderOutput": "reorder"}.get(op, op)


runs = [e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"][5:]
nodes = [e for e in trace if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
start = runs[0]["ts"] if runs else 0
per_kind = collections.defaultdict(float)
for e in nodes:
    if e["ts"] >= start:
        per_kind[kind(e["args"].get("op_name", ""), e["args"].get("input_type_shape", []))] += e["dur"] / 1e3 / iters
total = sum(e["dur"] for e in runs) / 1e3 / max(len(runs), 1)
print(json.dumps({"total_ms": total, "per_op_ms": dict(sorted(per_kind.items(), key=lambda kv: -kv[1])), "onnxruntime": ort.__version__}))
