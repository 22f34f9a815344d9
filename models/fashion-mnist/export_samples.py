#!/usr/bin/python3
# Writes sample Fashion-MNIST test images as PNG into test/data/fashion/: for each class, the first test image
# the committed model classifies right (so a test may expect its label), named <label>_<class>.png (e.g.
# shirt_6.png), for the classify function's tests and benchmarks.
# Usage: /usr/bin/python3 models/fashion-mnist/export_samples.py [OUT_DIR]
import os
import re
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fashion_model  # noqa: E402
from train import read_idx  # noqa: E402


def file_stem(label):
    """A label as a file name: lower case, runs of other characters as one '-' ("T-shirt/top" -> "t-shirt-top")."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "test", "data", "fashion")
    os.makedirs(out, exist_ok=True)
    images = read_idx("t10k-images-idx3-ubyte.gz")
    labels = read_idx("t10k-labels-idx1-ubyte.gz")
    saved = torch.load(os.path.join(HERE, "fashion_cnn.pt"))
    net = fashion_model.FashionCNN().eval()
    net.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        x = (torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) - saved["mean"]) / saved["std"]
        predicted = net(x).argmax(1).numpy()
    for cls, label in enumerate(fashion_model.LABELS):
        of_class = np.flatnonzero(labels == cls)
        index = int(of_class[predicted[of_class] == cls][0])
        path = os.path.join(out, f"{file_stem(label)}_{cls}.png")
        # Gray 8-bit as in the data set: light item on a dark background (unifn.invert = 0).
        Image.fromarray(images[index], mode="L").save(path, optimize=True)
        print(f"{os.path.relpath(path)}: test image {index}, class {cls} ({label}); "
              f"{int(np.sum(of_class < index))} earlier image(s) of the class misclassified")


if __name__ == "__main__":
    main()
