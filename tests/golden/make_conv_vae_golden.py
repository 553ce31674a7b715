#!/usr/bin/python3
"""Golden reference for LatentLab's convolutional VAE (core/models/conv_vae.h): loss terms and gradients of
every parameter computed by PyTorch for the same module, written to tests/golden/conv_vae_golden.json.

Run from the repository root with Debian 12's python3-torch:  /usr/bin/python3 tests/golden/make_conv_vae_golden.py

No random numbers are shared between the two implementations: the weights, the inputs are closed-form
functions of the element index (the test, tests/test_beta_conv_vae.cpp, computes the same ones), and
z is the posterior mean. Each weight is computed in float64 and rounded to float32; the forward and
backward passes run in float64 from those float32 values. The file stores, per tensor, the gradient's
sum, its L2 norm and its values at a few fixed indices (the full gradients would be 1 MB).
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

S, Z, B = 28, 4, 3


class ConvVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU())
        self.fc_mu = nn.Linear(64 * 7 * 7, Z)
        self.fc_logvar = nn.Linear(64 * 7 * 7, Z)
        self.decoder_input = nn.Linear(Z, 64 * 7 * 7)
        self.decoder = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))

    def forward(self, x):
        h = self.encoder(x).flatten(1)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu  # the posterior mean: deterministic
        h = F.relu(self.decoder_input(z)).view(-1, 64, 7, 7)
        return self.decoder(h), mu, logvar


def fan_in(shape):
    # PyTorch's default init bound is 1/sqrt(fan_in), fan_in = weight.size(1) * K * K for Conv2d and
    # ConvTranspose2d alike (for the latter that is its output channels), and in_features for Linear.
    return shape[1] * shape[2] * shape[3] if len(shape) == 4 else shape[1]


def weight_value(t, i, bound):
    # Tensor number t (state_dict order), element i: a deterministic value in (-bound, bound).
    return bound * math.sin(0.7 * i + 1.3 * t + 0.1)


def main():
    torch.set_num_threads(1)
    m = ConvVAE().double()
    sd = m.state_dict()
    names = list(sd.keys())
    shapes = {n: list(sd[n].shape) for n in names}
    new = {}
    for t, n in enumerate(names):
        w = names[t - 1] if n.endswith(".bias") else n  # a bias uses its weight's fan-in
        bound = 1.0 / math.sqrt(fan_in(shapes[w]))
        numel = sd[n].numel()
        vals = torch.tensor([weight_value(t, i, bound) for i in range(numel)], dtype=torch.float64)
        new[n] = vals.float().double().view(sd[n].shape)
    m.load_state_dict(new, strict=True)
    x = torch.tensor([0.5 + 0.5 * math.sin(0.37 * i + 1.1 * b) for b in range(B) for i in range(S * S)],
                     dtype=torch.float64).float().double().view(B, 1, S, S)
    logits, mu, logvar = m(x)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
    (bce.sum() + kl.sum()).backward()
    grads = {}
    for n, p in m.named_parameters():
        g = p.grad.flatten()
        idx = sorted({0, min(1, g.numel() - 1), g.numel() // 3, g.numel() // 2, g.numel() - 1})
        grads[n] = {"shape": shapes[n], "sum": g.sum().item(), "norm": g.norm().item(),
                    "at": [[i, g[i].item()] for i in idx]}
    out = {
        "what": "conv VAE (core/models/conv_vae.h), z = posterior mean, B=3 28x28 inputs, Z=4; made by make_conv_vae_golden.py",
        "torch": torch.__version__,
        "weights": "tensor t (state_dict order), element i: float32(sin(0.7 i + 1.3 t + 0.1) / sqrt(fan_in))",
        "inputs": "x[b, i] = float32(0.5 + 0.5 sin(0.37 i + 1.1 b))",
        "tensor_order": names,
        "bce": bce.tolist(), "kl": kl.tolist(),
        "probs_first": torch.sigmoid(logits).flatten()[:8].tolist(),
        "grads": grads,
    }
    with open("tests/golden/conv_vae_golden.json", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
