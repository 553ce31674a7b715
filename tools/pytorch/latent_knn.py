#!/usr/bin/python3
"""How well a model's code separates the digits: k-nearest-neighbour accuracy in code space.

Encodes the MNIST training and test sets with a LatentLab AE or VAE file (the VAE's code is the posterior
mean), then classifies each test code by a majority vote of its k nearest training codes (Euclidean).
For the 2-D models this is the figure behind "the latent scatter separates the digits"; optionally it
also draws the scatter of the test codes coloured by label.

    /usr/bin/python3 tools/pytorch/latent_knn.py models/vae_2d.safetensors [--k 5] [--png scatter.png]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import latentlab_torch as ll  # noqa: E402


def read_idx_labels(path):
    with open(path, "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)


def encode(model, x, batch=2000):
    codes = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            codes.append(model.encode(xb)[0] if model.kind == "vae" else model.encoder(xb))
    return torch.cat(codes).double()


def knn_accuracy(train_codes, train_labels, test_codes, test_labels, k):
    correct = 0
    tl = torch.from_numpy(train_labels)
    for i in range(0, len(test_codes), 500):
        d = torch.cdist(test_codes[i:i + 500], train_codes)
        idx = d.topk(k, largest=False).indices
        votes = torch.nn.functional.one_hot(tl[idx], 10).sum(dim=1)
        correct += (votes.argmax(dim=1).numpy() == test_labels[i:i + 500]).sum()
    return correct / len(test_codes)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--data-dir", default=ll.default_data_dir())
    p.add_argument("--png", help="also draw the test codes' scatter (needs matplotlib)")
    a = p.parse_args()
    torch.set_num_threads(1)
    model = ll.load_model(a.file)
    d = a.data_dir
    xtr = ll.read_idx_images(os.path.join(d, "train-images-idx3-ubyte"))
    xte = ll.read_idx_images(os.path.join(d, "t10k-images-idx3-ubyte"))
    ytr = read_idx_labels(os.path.join(d, "train-labels-idx1-ubyte"))
    yte = read_idx_labels(os.path.join(d, "t10k-labels-idx1-ubyte"))
    ctr, cte = encode(model, xtr), encode(model, xte)
    acc = knn_accuracy(ctr, ytr, cte, yte, a.k)
    print(json.dumps({"file": a.file, "model": model.kind, "code_size": int(cte.shape[1]),
                      f"knn{a.k}_accuracy": round(float(acc), 4)}))
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 6))
        sc = ax.scatter(cte[:, 0], cte[:, 1], c=yte, cmap="tab10", s=2)
        fig.colorbar(sc, ax=ax)
        ax.set_title(os.path.basename(a.file))
        fig.savefig(a.png, dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
