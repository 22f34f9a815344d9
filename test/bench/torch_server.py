#!/usr/bin/python3
# The torch baseline for the classify benchmark: a persistent HTTP server that keeps the Fashion-MNIST CNN loaded
# in python3-torch and answers like the unifn `classify` function.
#
# POST an image (PNG or JPEG, any size) -> 200 {"label": "...", "class": N, "confidence": p}; 400 when the body is
# not an image. The image is decoded with PIL, made gray, resized to 28x28 and normalised with the mean and std
# the model was trained with (models/fashion-mnist/fashion_cnn.pt, the weights of fashion_cnn.onnx).
# Usage: /usr/bin/python3 test/bench/torch_server.py [--port 8090] [--threads 1]
import argparse
import io
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "fashion-mnist")
sys.path.insert(0, MODEL_DIR)
import fashion_model  # noqa: E402

MAX_BODY = 16 << 20  # refuse bodies over 16 MiB rather than reading them


class Classifier:
    def __init__(self, weights):
        saved = torch.load(weights, map_location="cpu")
        self.mean, self.std = saved["mean"], saved["std"]
        self.net = fashion_model.FashionCNN()
        self.net.load_state_dict(saved["state_dict"])
        self.net.eval()

    def __call__(self, body):
        """The answer for an image's bytes; raises ValueError when they are not an image PIL decodes."""
        try:
            img = Image.open(io.BytesIO(body))
            img = img.convert("L").resize((fashion_model.SIDE, fashion_model.SIDE), Image.BILINEAR)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise ValueError(f"the body is not an image PIL decodes ({e})") from e
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        x = ((x - self.mean) / self.std).reshape(1, 1, fashion_model.SIDE, fashion_model.SIDE)
        with torch.inference_mode():
            probs = torch.softmax(self.net(x), dim=1)[0]
        cls = int(probs.argmax())
        return {"label": fashion_model.LABELS[cls], "class": cls, "confidence": round(float(probs[cls]), 6)}


def make_handler(classify):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as wrk and the unifn daemon use

        def reply(self, status, obj):
            data = (json.dumps(obj) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                return self.reply(413, {"error": f"the body is {length} bytes, over the {MAX_BODY} byte limit"})
            body = self.rfile.read(length)
            try:
                self.reply(200, classify(body))
            except ValueError as e:
                self.reply(400, {"error": str(e)})

        def log_message(self, *args):  # quiet: one line per request would dominate a benchmark
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser(description="torch baseline classify server")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--weights", default=os.path.join(MODEL_DIR, "fashion_cnn.pt"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Classifier(args.weights)))
    server.daemon_threads = True
    print(f"torch_server: listening on http://{args.host}:{server.server_port}/ (torch {torch.__version__})",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
