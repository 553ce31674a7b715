#!/usr/bin/python3
"""The PixelCNN prior over VQ-VAE codes (core/models/pixelcnn.h) in PyTorch, loaded from a LatentLab file.

Rebuilds the prior as nn.Modules from the safetensors file alone, encodes the MNIST test set with the
VQ-VAE's encoder and codebook (also loaded in PyTorch), and prints one JSON line with the test NLL in
nats per 7x7 grid: the figure `latentlab eval --model-file PRIOR --vqvae VQVAE --json` gives as "nll".
Agreement shows the file means what the docs say: every tensor name, kernel shape and padding.

    /usr/bin/python3 tools/pytorch/prior_torch.py models/vqvae_prior.safetensors models/vqvae.safetensors

The masked convolutions are stored at their true shapes (the rows r0..r1 and columns c0..c1 of the
k x k mask that hold taps); each is an nn.Conv2d of that kernel with padding 0, applied to
F.pad(x, (p - c0, c1 - p, p - r0, r1 - p)) with p = k // 2 (a negative pad crops). Files from before
that hold whole k x k kernels with the masked taps zero, padded p on every side; both load here.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import latentlab_torch as ll  # noqa: E402


def mask_box(kind, k, stacks):
    """(r0, r1, c0, c1) of the taps a mask allows; kind: 'a' (first layer) or 'b', 'v' prefix: v stack."""
    p = k // 2
    if stacks == 1:
        return (0, p, 0, k - 1)               # rows above, then the centre row up to (B) or left of (A) it
    return {"a": (p, p, 0, p - 1),            # the cell's row, left of it
            "b": (p, p, 0, p),                # the cell's row, up to it
            "va": (0, p - 1, 0, k - 1),       # the rows above
            "vb": (0, p, 0, k - 1)}[kind]     # the rows above and the cell's row


class PixelCnnPrior(nn.Module):
    def __init__(self, cfg, tensors):
        super().__init__()
        K, C, L, stacks = cfg["K"], cfg["channels"], cfg["layers"], cfg.get("stacks", 1)
        classes, ka, kb = cfg.get("classes", 0), cfg["kernel_a"], cfg["kernel_b"]
        self.K, self.stacks, self.classes = K, stacks, classes
        self.pads = {}

        def masked(name, cin, k, kind):
            w = tensors[name + ".weight"]
            conv = nn.Conv2d(cin, C, tuple(w.shape[2:]))
            p = k // 2
            r0, r1, c0, c1 = (0, k - 1, 0, k - 1) if tuple(w.shape[2:]) == (k, k) else mask_box(kind, k, stacks)
            if tuple(w.shape[2:]) != (r1 - r0 + 1, c1 - c0 + 1):
                raise ValueError(f"{name}.weight has shape {list(w.shape)}; expected kernel {(r1 - r0 + 1, c1 - c0 + 1)}")
            self.pads[name] = (p - c0, c1 - p, p - r0, r1 - p)
            return conv

        self.input_conv = masked("input_conv", K, ka, "a")
        self.layers = nn.ModuleList(masked(f"layers.{i}", C, kb, "b") for i in range(L))
        self.output = nn.Sequential(nn.Conv2d(C, C, 1), nn.ReLU(), nn.Conv2d(C, K, 1))
        if stacks == 2:
            self.input_vconv = masked("input_vconv", K, ka, "va")
            self.vlayers = nn.ModuleList(masked(f"vlayers.{i}", C, kb, "vb") for i in range(L))
            self.input_v2h = nn.Conv2d(C, C, 1)
            self.v2h = nn.ModuleList(nn.Conv2d(C, C, 1) for _ in range(L))
        if classes:
            self.cond_input_conv = nn.Embedding(classes, C)
            self.cond_layers = nn.ModuleList(nn.Embedding(classes, C) for _ in range(L))
            self.cond_output = nn.Embedding(classes, C)
            if stacks == 2:
                self.cond_input_vconv = nn.Embedding(classes, C)
                self.cond_vlayers = nn.ModuleList(nn.Embedding(classes, C) for _ in range(L))
        self.load_state_dict(tensors, strict=True)  # F16 -> float32

    def conv(self, name, module, x):
        return module(F.pad(x, self.pads[name]))

    def bias(self, name, y):
        if not self.classes:
            return 0.0
        return self.get_submodule(name)(y)[:, :, None, None]

    def forward(self, codes, labels=None):
        """codes [B, H, W] int64, labels [B] (class-conditional) -> NLL [B] in nats per grid."""
        x = F.one_hot(codes, self.K).permute(0, 3, 1, 2).float()
        two = self.stacks == 2
        pre = self.conv("input_conv", self.input_conv, x) + self.bias("cond_input_conv", labels)
        if two:
            v = F.relu(self.conv("input_vconv", self.input_vconv, x) + self.bias("cond_input_vconv", labels))
            pre = pre + self.input_v2h(v)
        h = F.relu(pre)
        for i, layer in enumerate(self.layers):
            pre = self.conv(f"layers.{i}", layer, h) + self.bias(f"cond_layers.{i}", labels)
            if two:
                v = v + F.relu(self.conv(f"vlayers.{i}", self.vlayers[i], v) + self.bias(f"cond_vlayers.{i}", labels))
                pre = pre + self.v2h[i](v)
            h = h + F.relu(pre)
        o = F.relu(self.output[0](h) + self.bias("cond_output", labels))
        logits = self.output[2](o)
        return F.cross_entropy(logits, codes, reduction="none").sum(dim=(1, 2))


class VqEncoder(nn.Module):
    """The VQ-VAE's encoder and codebook: images [B, 784] -> code grids [B, 7, 7]."""

    def __init__(self, tensors):
        super().__init__()
        D = tensors["encoder.4.weight"].shape[0]
        self.encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                     nn.Conv2d(64, D, 1))
        self.codebook = nn.Embedding(*tensors["codebook.weight"].shape)
        wanted = {k: v for k, v in tensors.items() if k.startswith("encoder.") or k == "codebook.weight"}
        self.load_state_dict(wanted, strict=True)

    def forward(self, x):
        z = self.encoder(x.view(-1, 1, 28, 28)).permute(0, 2, 3, 1)  # [B, 7, 7, D]
        d = (z * z).sum(-1, keepdim=True) - 2 * z @ self.codebook.weight.T + (self.codebook.weight ** 2).sum(-1)
        return d.argmin(-1)


def read_idx_labels(path):
    with open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic != 0x00000801:
        raise ValueError(f"{path}: magic {magic:#x}, expected 0x801 (IDX labels)")
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=8)[:n].astype(np.int64))


def main(argv=None):
    parser = argparse.ArgumentParser(description="A LatentLab PixelCNN prior file in PyTorch: its test NLL")
    parser.add_argument("prior")
    parser.add_argument("vqvae")
    parser.add_argument("--data-dir", default=ll.default_data_dir())
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tensors, meta = ll.load_safetensors(args.prior)
    if meta.get("latentlab.model") != "pixelcnn_prior":
        print(f"prior_torch: {args.prior} is not a PixelCNN prior file", file=sys.stderr)
        return 1
    cfg = json.loads(meta["latentlab.config"])
    prior = PixelCnnPrior(cfg, {k: v.float() for k, v in tensors.items()}).eval()
    vq_tensors, _ = ll.load_safetensors(args.vqvae)
    enc = VqEncoder({k: v.float() for k, v in vq_tensors.items()}).eval()
    x = ll.read_idx_images(os.path.join(args.data_dir, "t10k-images-idx3-ubyte"))
    y = read_idx_labels(os.path.join(args.data_dir, "t10k-labels-idx1-ubyte"))
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            codes = enc(x[i:i + 500])
            total += prior(codes, y[i:i + 500] if prior.classes else None).double().sum().item()
    print(json.dumps({"model": "pixelcnn_prior", "nll": total / len(x), "classes": prior.classes,
                      "parameters": sum(p.numel() for p in prior.parameters())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
