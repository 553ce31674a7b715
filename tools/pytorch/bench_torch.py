#!/usr/bin/python3
"""PyTorch's training speed on LatentLab's models, the native baseline of the speed figures.

Trains the MLP VAE (784-400-20, BCE + KL, the PyTorch VAE example) and the conv VQ-VAE (issue 3's
architecture: K 64, D 16, straight-through, codebook + commitment loss) at batch 128 with Adam 1e-3 on
random [0, 1] images, and prints images/s (the median of 0.25 s windows after a warm-up), for 1 and 2
threads, as one JSON object, as `latentlab bench --json` does for LatentLab:

    /usr/bin/python3 tools/pytorch/bench_torch.py [--seconds 5] [--threads 1 2]

Each thread count t runs in its own process with OMP_NUM_THREADS=t and torch.set_num_threads(t), and
OPENBLAS_NUM_THREADS=1: OpenBLAS's own pthread pool (which does not follow torch.set_num_threads)
fights PyTorch's OpenMP threads; measured here at 2 threads, the VAE trains at 9,500 images/s with it
pinned to 1 and at 3,500-4,000 with it at 2. Needs Debian's python3-torch and an
optimised BLAS behind it (`apt-get install python3-torch libopenblas0-pthread`: with only the reference
libblas3, PyTorch trains the VAE at a sixth of the speed). Only a measuring tool: LatentLab never needs
PyTorch to run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def loss(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        logits = self.fc4(F.relu(self.fc3(z)))
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class VQVAE(nn.Module):
    def __init__(self, K=64, D=16, beta=0.25):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                     nn.Conv2d(64, D, 1))
        self.codebook = nn.Embedding(K, D)
        self.codebook.weight.data.uniform_(-1 / K, 1 / K)
        self.decoder = nn.Sequential(nn.Conv2d(D, 64, 3, 1, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid())  # as LatentLab's default
        self.beta = beta

    def loss(self, x):
        x = x.view(-1, 1, 28, 28)
        ze = self.encoder(x)
        B, D, H, W = ze.shape
        flat = ze.permute(0, 2, 3, 1).reshape(-1, D)
        idx = torch.cdist(flat, self.codebook.weight).argmin(dim=1)
        zq = self.codebook(idx).view(B, H, W, D).permute(0, 3, 1, 2)
        st = ze + (zq - ze).detach()
        out = self.decoder(st)
        return (F.mse_loss(out, x) + F.mse_loss(zq, ze.detach()) + self.beta * F.mse_loss(ze, zq.detach()))


def images_per_s(model, seconds, batch=128):
    torch.manual_seed(1)
    x = torch.rand(batch, 784)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        model.loss(x).backward()
        opt.step()

    for _ in range(5):
        step()
    windows, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 0.25:
            step()
            n += 1
        windows.append(n * batch / (time.perf_counter() - t0))
    return statistics.median(windows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:  # one thread count, in a process whose BLAS was loaded with it
        torch.set_num_threads(a.threads[0])
        print(json.dumps({"vae": images_per_s(VAE(), a.seconds), "vqvae": images_per_s(VQVAE(), a.seconds)}))
        return
    result = {"torch": torch.__version__, "batch": 128}
    for t in a.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS=str(t))
        out = subprocess.run([sys.executable, __file__, "--child", "--seconds", str(a.seconds), "--threads", str(t)],
                             env=env, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        result[f"vae_images_per_s_{t}t"] = round(r["vae"], 1)
        result[f"vqvae_images_per_s_{t}t"] = round(r["vqvae"], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
