"""Runs ONNX models with ONNX Runtime for dynofa's export test.

Usage: python3 ort_run.py MANIFEST.json — each item {"model", "input", "output"}: runs the
model on the input batch and on its first sample alone (the batch dimension is dynamic),
checks both agree, and writes the batch's logits to "output".
"""
import json
import sys

import numpy as np
import onnxruntime as ort

for item in json.load(open(sys.argv[1])):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(item["model"], options, providers=["CPUExecutionProvider"])
    x = np.load(item["input"])
    (logits,) = session.run(None, {"input": x})
    (single,) = session.run(None, {"input": x[:1]})
    assert logits.shape == (x.shape[0], 1000), logits.shape
    assert np.allclose(single[0], logits[0], atol=1e-4, rtol=1e-3), "batch 1 differs from batch 2"
    np.save(item["output"], logits.astype(np.float32))
print(f"onnxruntime {ort.__version__}: ran {len(json.load(open(sys.argv[1])))} models")
