"""Times an ONNX model with ONNX Runtime for `cargo xtask ort-compare`.

Usage: python3 ort_bench.py MODEL.onnx BATCH THREADS ITERS — prints {"median_ms": …} as JSON.
ONNX Runtime runs with all graph optimisations (its default), THREADS intra-op threads,
sequential execution, after 5 warm-up runs; the input is the same pattern `dynofa bench` uses.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, batch, threads, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
shape = session.get_inputs()[0].shape
r = shape[2]
x = ((np.arange(batch * 3 * r * r) % 251).astype(np.float32) - 125.0) / 60.0
x = x.reshape(batch, 3, r, r)
for _ in range(5):
    session.run(None, {"input": x})
times = []
for _ in range(iters):
    start = time.perf_counter()
    session.run(None, {"input": x})
    times.append((time.perf_counter() - start) * 1e3)
times.sort()
print(json.dumps({"median_ms": times[len(times) // 2], "min_ms": times[0], "onnxruntime": ort.__version__}))
