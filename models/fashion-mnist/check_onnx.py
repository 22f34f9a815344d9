#!/usr/bin/python3
# Checks the committed fashion_cnn.onnx itself, not torch's weights: runs its graph with a small numpy evaluator
# (the operators this graph uses) on the 10,000 test images, prints the top-1 accuracy, and compares the
# probabilities with torch on fashion_cnn.pt. Debian has no ONNX runtime for Python; this stands in for one.
# Usage: /usr/bin/python3 models/fashion-mnist/check_onnx.py
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train import load_split  # noqa: E402


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv(x, w, b, a):
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])) or "auto_pad" in a:
        raise ValueError(f"conv attributes {a} are beyond this checker")
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    sh, sw = a.get("strides", [1, 1])
    kh, kw = w.shape[2:]
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow), np.float32)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]  # N C OH OW
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j], optimize=True)
    return out + (b.reshape(1, -1, 1, 1) if b is not None else 0)


def maxpool(x, a):
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    if any(a.get("pads", [0])) or a.get("ceil_mode", 0):
        raise ValueError(f"maxpool attributes {a} are beyond this checker")
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = np.full((x.shape[0], x.shape[1], oh, ow), -np.inf, np.float32)
    for i in range(kh):
        for j in range(kw):
            out = np.maximum(out, x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw])
    return out


def gemm(x, w, b, a):
    x = x.T if a.get("transA", 0) else x
    w = w.T if a.get("transB", 0) else w
    return a.get("alpha", 1.0) * (x @ w) + (a.get("beta", 1.0) * b if b is not None else 0)


def softmax(x, a):
    e = np.exp(x - x.max(axis=a.get("axis", -1), keepdims=True))
    return e / e.sum(axis=a.get("axis", -1), keepdims=True)


def run(model, image):
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values[model.graph.input[0].name] = image
    for node in model.graph.node:
        a, ins = attrs(node), [values[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Conv":
            out = conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
        elif op == "Relu":
            out = np.maximum(ins[0], 0)
        elif op == "MaxPool":
            out = maxpool(ins[0], a)
        elif op == "Flatten":
            out = ins[0].reshape(ins[0].shape[0], -1)
        elif op == "Gemm":
            out = gemm(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
        elif op == "Softmax":
            out = softmax(ins[0], a)
        elif op in ("Identity", "Dropout"):
            out = ins[0]
        else:
            raise ValueError(f"node {node.name}: operator {op} is beyond this checker")
        values[node.output[0]] = out.astype(np.float32)
    return values[model.graph.output[0].name]


def main():
    import torch
    import fashion_model
    model = onnx.load(os.path.join(HERE, "fashion_cnn.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    mean, std = float(meta["unifn.mean"]), float(meta["unifn.std"])
    images, labels = load_split("t10k")
    x = ((images - mean) / std).numpy()
    probs = np.concatenate([run(model, x[i:i + 500]) for i in range(0, len(x), 500)])
    acc = (probs.argmax(1) == labels.numpy()).mean()

    saved = torch.load(os.path.join(HERE, "fashion_cnn.pt"))
    net = fashion_model.WithSoftmax(fashion_model.FashionCNN()).eval()
    net.net.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    diff = np.abs(probs - ref).max()
    agree = (probs.argmax(1) == ref.argmax(1)).mean()
    print(f"fashion_cnn.onnx: top-1 {acc * 100:.2f}% on {len(x)} test images; vs torch: max |dp| {diff:.2e}, "
          f"arg max agrees on {agree * 100:.2f}%; metadata {meta}")
    if diff > 1e-4 or agree < 0.999:
        sys.exit("check_onnx.py: the ONNX graph does not compute what torch computes")


if __name__ == "__main__":
    main()
