#!/usr/bin/python3
# Trains the small Fashion-MNIST CNN reproducibly and exports it to ONNX with its preprocessing as metadata.
#
# Reproducible: fixed seeds, deterministic algorithms, a fixed thread count, the data from Debian's
# dataset-fashion-mnist. Writes, beside this script: fashion_cnn.onnx (the model the runtime serves),
# fashion_cnn.pt (the same weights as a torch state_dict, for the torch baseline server in test/bench/)
# and ACCURACY.md (top-1 on the 10,000 test images, how it was trained).
# Usage: /usr/bin/python3 models/fashion-mnist/train.py [--epochs N] [--seed S] [--threads T]
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fashion_model  # noqa: E402  (beside this script)

DATA = "/usr/share/datasets/fashion-mnist"
# The operators the unifn ONNX executor runs; the exported graph must use no other.
SUPPORTED_OPS = {
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Relu", "LeakyRelu",
    "Sigmoid", "Tanh", "Clip", "Add", "Mul", "Sub", "Div", "MatMul", "Gemm", "Softmax", "LogSoftmax",
    "Concat", "Transpose", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout", "Constant", "Identity",
}
OPSET = 13


def read_idx(name):
    """An IDX file of Debian's dataset-fashion-mnist as a uint8 array (images N x 28 x 28, labels N)."""
    path = os.path.join(DATA, name)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        sys.exit(f"train.py: {path} is missing: install dataset-fashion-mnist (scripts/install-deps.sh)")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(prefix):
    images = read_idx(f"{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels)


def accuracy(model, images, labels, mean, std):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), 1000):
            x = (images[i:i + 1000] - mean) / std
            correct += (model(x).argmax(1) == labels[i:i + 1000]).sum().item()
    return correct / len(images)


def check_onnx_ops(path):
    """The op types of the exported graph, refusing any the unifn executor does not run."""
    import onnx
    model = onnx.load(path)
    onnx.checker.check_model(model)
    ops = sorted({n.op_type for n in model.graph.node})
    bad = [op for op in ops if op not in SUPPORTED_OPS]
    if bad:
        sys.exit(f"train.py: the exported graph uses {bad}, which the unifn executor does not run")
    return ops


def add_metadata(path, props):
    """Stores the preprocessing the guest must apply as ONNX metadata_props (the onnx module, Debian python3-onnx)."""
    import onnx
    model = onnx.load(path)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "unifn models/fashion-mnist/train.py"
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    train_x, train_y = load_split("train")
    test_x, test_y = load_split("t10k")
    # Per-channel normalisation from the training set, rounded to what the metadata records, so that the guest
    # (which reads the metadata) and training use exactly the same numbers.
    mean = round(train_x.mean().item(), 4)
    std = round(train_x.std().item(), 4)
    print(f"train: {len(train_x)} images, test: {len(test_x)}, mean {mean:.4f} std {std:.4f}", flush=True)

    model = fashion_model.FashionCNN()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    norm_x = (train_x - mean) / std

    start = time.monotonic()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(norm_x), generator=gen)
        total = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            opt.zero_grad()
            loss = loss_fn(model(norm_x[idx]), train_y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        acc = accuracy(model, test_x, test_y, mean, std)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / len(norm_x):.4f} test top-1 {acc:.4f} "
              f"({time.monotonic() - start:.0f} s)", flush=True)
    train_s = time.monotonic() - start
    acc = accuracy(model, test_x, test_y, mean, std)

    model.eval()
    pt_path = os.path.join(HERE, "fashion_cnn.pt")
    torch.save({"state_dict": model.state_dict(), "mean": mean, "std": std}, pt_path)

    onnx_path = os.path.join(HERE, "fashion_cnn.onnx")
    exported = fashion_model.WithSoftmax(model).eval()
    torch.onnx.export(exported, torch.zeros(1, 1, 28, 28), onnx_path, input_names=["image"],
                      output_names=["probabilities"], opset_version=OPSET, do_constant_folding=True)
    add_metadata(onnx_path, fashion_model.metadata(mean, std))
    ops = check_onnx_ops(onnx_path)
    size = os.path.getsize(onnx_path)
    print(f"exported {onnx_path}: {size} bytes, opset {OPSET}, ops {ops}", flush=True)

    command = "/usr/bin/python3 models/fashion-mnist/train.py" + (
        f" --epochs {args.epochs} --seed {args.seed} --threads {args.threads} --batch {args.batch} --lr {args.lr}")
    with open(os.path.join(HERE, "ACCURACY.md"), "w") as f:
        f.write(f"""# fashion_cnn.onnx: accuracy

Written by `train.py` at the end of the run that produced the committed model.

| | |
|---|---|
| top-1 on the 10,000 Fashion-MNIST test images | **{acc * 100:.2f}%** ({round(acc * len(test_x))}/{len(test_x)}) |
| epochs | {args.epochs} (batch {args.batch}, Adam lr {args.lr}, cosine schedule) |
| seed | {args.seed} |
| torch | {torch.__version__} (Debian python3-torch), CPU, {args.threads} threads, deterministic algorithms |
| training time | {train_s:.0f} s |
| normalisation | mean {mean:.4f}, std {std:.4f} (from the 60,000 training images) |
| ONNX | opset {OPSET}, {size} bytes, operators {", ".join(ops)} |
| data | Debian dataset-fashion-mnist, `{DATA}` |

Command (from the repository top):

    {command}

The accuracy is measured with torch on the trained weights before export; the ONNX graph computes the same
function (Conv and BatchNormalization folded by the exporter) followed by Softmax.
""")
    print(f"top-1 {acc:.4f}, training {train_s:.0f} s", flush=True)


if __name__ == "__main__":
    main()
