# The Fashion-MNIST CNN and its preprocessing facts, shared by train.py, export_samples.py and the torch baseline server.
import torch
import torch.nn as nn

# Fashion-MNIST's classes in label order (0-9).
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SIDE = 28  # the model's input is SIDE x SIDE, one gray channel


class FashionCNN(nn.Module):
    """Two conv/BN/ReLU/max-pool stages and two fully connected layers: about 106k parameters, ~0.4 MB as ONNX."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # 16 x 14 x 14
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 7 x 7
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Dropout(0.25), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))  # logits


class WithSoftmax(nn.Module):
    """The exported form: probabilities, not logits, so the runtime needs no post-processing but the arg max."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


def metadata(mean, std):
    """The ONNX metadata_props keys the guest reads to prepare an image (documented in README.md)."""
    return {
        "unifn.input": f"{SIDE}x{SIDE} gray",
        "unifn.mean": f"{mean:.4f}",
        "unifn.std": f"{std:.4f}",
        "unifn.labels": ",".join(LABELS),
        "unifn.invert": "0",  # Fashion-MNIST items are light on a dark background, as the images come
    }
