#!/usr/bin/python3
"""Golden reference for LatentLab's TD-VAE (core/models/tdvae.h), computed by PyTorch autograd in
float64 from the network as xqding/TD-VAE writes it (module names kept; LatentLab adds the one-hot
jump size to the transition's inputs): tests/golden/tdvae_golden.safetensors, read by
tests/test_tdvae.cpp (TdVae.MatchesPyTorchGolden).

Run from the repository root with Debian 12's python3-torch:
    /usr/bin/python3 tests/golden/make_tdvae_golden.py

Two small networks, prefixes "a." and "b." (case a: frames 6, 12 pixels, processed 7, belief 5, z 3 per
layer, D blocks 6 wide, decoder 8, 2 pairs per sequence, jumps 1..3, seed 3; case b: frames 7, 10
pixels, processed 6, belief 4, z 2, D blocks 5, decoder 6, 3 pairs, jumps 1..4, seed 4), each with
PyTorch's default init under torch.manual_seed(seed), a batch of B = 2 binary sequences, random valid
pairs (t1, t2) and Gaussian draws eps [B * pairs, 4, z] (the order LatentLab draws them: z_t2 layer 2,
z_t2 layer 1, z_t1 layer 2, z_t1 layer 1). Stored per case: the weights w.<name> (F32, LatentLab's
names), x, t1, t2, eps (F32), and in F64 the per-sequence figures (loss, bce, kl_t1, kl_t2: means over
the sequence's pairs) and grad.<name> = d(sum_b loss_b)/d(weight); metadata "<case>.config" (the
TdVaeConfig as JSON) and "batch".
"""
import math
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golden_io  # noqa: E402

B = 2
CASES = {
    "a": dict(frames=6, pixels=12, processed=7, belief=5, z=3, block_hidden=6, decoder_hidden=8, pairs=2, max_jump=3,
              seed=3),
    "b": dict(frames=7, pixels=10, processed=6, belief=4, z=2, block_hidden=5, decoder_hidden=6, pairs=3, max_jump=4,
              seed=4),
}
FRAMES = X = P = HB = Z = HD = D = PAIRS = J = 0  # set per case by configure()


def configure(c):
    global FRAMES, X, P, HB, Z, HD, D, PAIRS, J
    FRAMES, X, P, HB, Z, HD, D, PAIRS, J = (c[k] for k in ("frames", "pixels", "processed", "belief", "z",
                                                           "block_hidden", "decoder_hidden", "pairs", "max_jump"))


class DBlock(nn.Module):
    def __init__(self, i, h, o):
        super().__init__()
        self.fc1 = nn.Linear(i, h)
        self.fc2 = nn.Linear(i, h)
        self.fc_mu = nn.Linear(h, o)
        self.fc_logsigma = nn.Linear(h, o)

    def forward(self, x):
        t = torch.tanh(self.fc1(x)) * torch.sigmoid(self.fc2(x))
        return self.fc_mu(t), self.fc_logsigma(t)


class PreProcess(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(X, P)
        self.fc2 = nn.Linear(P, P)

    def forward(self, x):
        return torch.relu(self.fc2(torch.relu(self.fc1(x))))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2 * Z, D)
        self.fc2 = nn.Linear(D, D)
        self.fc3 = nn.Linear(D, X)

    def forward(self, z):
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(z)))))


class TDVAE(nn.Module):
    def __init__(self):
        super().__init__()
        # Creation order = LatentLab's arena order (tdvae.cpp's constructor).
        self.process_x = PreProcess()
        self.lstm = nn.LSTM(P, HB, batch_first=True)
        self.l2_b_to_z = DBlock(HB, HD, Z)
        self.l1_b_to_z = DBlock(HB + Z, HD, Z)
        self.l2_infer_z = DBlock(HB + 2 * Z, HD, Z)
        self.l1_infer_z = DBlock(HB + 3 * Z, HD, Z)
        self.l2_transition_z = DBlock(2 * Z + J, HD, Z)
        self.l1_transition_z = DBlock(3 * Z + J, HD, Z)
        self.z_to_x = Decoder()

    def loss(self, x, t1, t2, eps):
        """x [B, FRAMES, X]; t1, t2 [B * PAIRS] (row n = b * PAIRS + p); eps [B * PAIRS, 4, Z]."""
        b, _ = self.lstm(self.process_x(x))
        seq = torch.arange(B * PAIRS) // PAIRS
        b1, b2 = b[seq, t1], b[seq, t2]
        onehot = torch.nn.functional.one_hot(t2 - t1 - 1, J).to(x.dtype)
        mu, ls = self.l2_b_to_z(b2)
        z2_2 = mu + torch.exp(ls) * eps[:, 0]
        pb2 = (mu, ls)
        mu, ls = self.l1_b_to_z(torch.cat((b2, z2_2), -1))
        z2_1 = mu + torch.exp(ls) * eps[:, 1]
        pb1 = (mu, ls)
        z2 = torch.cat((z2_1, z2_2), -1)
        mu, ls = self.l2_infer_z(torch.cat((b1, z2), -1))
        z1_2 = mu + torch.exp(ls) * eps[:, 2]
        qs2 = (mu, ls)
        mu, ls = self.l1_infer_z(torch.cat((b1, z2, z1_2), -1))
        z1_1 = mu + torch.exp(ls) * eps[:, 3]
        qs1 = (mu, ls)
        z1 = torch.cat((z1_1, z1_2), -1)
        pb2_t1 = self.l2_b_to_z(b1)
        pb1_t1 = self.l1_b_to_z(torch.cat((b1, z1_2), -1))
        pt2 = self.l2_transition_z(torch.cat((z1, onehot), -1))
        pt1 = self.l1_transition_z(torch.cat((z1, z2_2, onehot), -1))
        logits = self.z_to_x(z2)
        target = x[seq, t2]
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)

        def log_normal(z, dist):
            mu, ls = dist
            return (-0.5 * ((z - mu) / torch.exp(ls)) ** 2 - ls - 0.5 * math.log(2 * math.pi)).sum(-1)

        kl1 = log_normal(z1_2, qs2) - log_normal(z1_2, pb2_t1) + log_normal(z1_1, qs1) - log_normal(z1_1, pb1_t1)
        kl2 = log_normal(z2_2, pb2) - log_normal(z2_2, pt2) + log_normal(z2_1, pb1) - log_normal(z2_1, pt1)
        per_seq = lambda v: v.view(B, PAIRS).mean(1)  # noqa: E731
        return per_seq(bce + kl1 + kl2), per_seq(bce), per_seq(kl1), per_seq(kl2)


def make_case(name, c):
    configure(c)
    torch.manual_seed(c["seed"])
    model32 = TDVAE()
    x = (torch.rand(B, FRAMES, X) < 0.4).float()
    dt = torch.randint(1, J + 1, (B * PAIRS,))
    t1 = (torch.rand(B * PAIRS) * (FRAMES - dt)).long()
    t2 = t1 + dt
    eps = torch.randn(B * PAIRS, 4, Z)
    model = TDVAE().double()
    model.load_state_dict({k: v.double() for k, v in model32.state_dict().items()})
    loss, bce, kl1, kl2 = model.loss(x.double(), t1, t2, eps.double())
    loss.sum().backward()
    tensors = []
    for pname, p in model32.named_parameters():
        tensors.append(("w." + pname, p.detach()))
    tensors += [("x", x), ("t1", t1.float()), ("t2", t2.float()), ("eps", eps)]
    tensors += [("loss", loss.detach()), ("bce", bce.detach()), ("kl_t1", kl1.detach()), ("kl_t2", kl2.detach())]
    for pname, p in model.named_parameters():
        tensors.append(("grad." + pname, p.grad.detach()))
    config = "{" + ",".join('"%s":%d' % (k, v) for k, v in c.items() if k != "seed") + "}"
    print(name, "pairs", list(zip(t1.tolist(), t2.tolist())), "loss", loss.tolist())
    return [(name + "." + n, t) for n, t in tensors], {name + ".config": config, name + ".seed": str(c["seed"])}


def main():
    tensors, meta = [], {"batch": str(B), "torch": torch.__version__}
    for name, c in CASES.items():
        t, m = make_case(name, c)
        tensors += t
        meta.update(m)
    path = os.path.join(HERE, "tdvae_golden.safetensors")
    golden_io.save(path, tensors, meta)
    print("wrote", path)


if __name__ == "__main__":
    main()
