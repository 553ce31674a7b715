#!/usr/bin/python3
"""Golden reference for LatentLab's VQ-VAE (core/models/vqvae.h), computed by PyTorch autograd from the
model's file layout alone: tests/golden/vqvae_golden.safetensors, read by tests/test_vqvae.cpp
(VqVae.MatchesPyTorchGolden).

Run from the repository root with Debian 12's python3-torch:  /usr/bin/python3 tests/golden/make_vqvae_golden.py

What it holds (names; F32 = the weights, the input, the gradients and every abs.*; F64 = the other reference values):
  w.<name>          the weights, PyTorch's default init under torch.manual_seed(1), except the codebook:
                    K of the batch's encoder outputs plus a little noise (the default init puts every
                    code near the origin, where one code takes every cell)
  x                 the batch [B, S*S] in [0, 1]
  idx               code indices [B*G] (F64 holding integers), raster order per image
  z_e, xhat         encoder output [B, D, g, g] and reconstruction [B, S*S]
  mse, codebook, commitment   the loss terms per image, LatentLab's convention (vqvae.h)
  grad.<name>       d(sum of all terms over the batch)/d(weight), ema = 0 (the codebook loss)
  ema_codebook      the codebook after one EMA update (ema = 1, decay 0.9, first step) from this batch
  abs.<value>       for every reference value above, S = the same expression evaluated on absolute values
                    (see below); the C++ test's bound on |LatentLab - reference| is 2 gamma_N S,
                    gamma_N = N u / (1 - N u), u = 2^-24, N = metadata "path_length"
The network runs in float64 from the float32 weights and input, so the reference is exact to ~1e-16.

The bound. Each float32 dot product of n terms, in any order, with or without FMA, is within
gamma_n sum|terms| of the exact one (Higham, Accuracy and Stability, 3.1). Propagating that through the
network to first order, the error of any value is at most gamma_N times the value computed with every
weight, input and upstream gradient replaced by its absolute value (and the ReLU masks of the real
forward), where N is the summed reduction length along the longest path: the forward convolutions,
the backward ones and one weight-gradient reduction (path_length). The errors a float32 forward leaves
in the quantities the backward starts from (d loss/d logits) are first-order too: their bound is added
to the absolute upstream gradient. The factor 2 covers the forward's and the backward's halves and the
libm ulps of the sigmoid.
Near-ties would make float32 choose otherwise (a ReLU mask, a nearest code), which no rounding bound
covers; the script refuses a seed whose batch has a ReLU input, or a gap between the nearest and the
second-nearest code, within 10 times u sqrt(n) times its absolute value (n: the reductions before it),
a random-sign estimate of float32's error there (the worst case gamma_n would refuse every batch of this
size), and takes the first seed from 1 that passes (metadata "seed").
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

S, B, K, D, BETA = 12, 2, 8, 4, 0.25
g = S // 4
G, P = g * g, S * S
SCALE = P / (G * D)  # vqvae.h: s = P / (G*D)
U = 2.0 ** -24


def build(seed):
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Conv2d(64, D, 1))
    codebook = nn.Embedding(K, D)
    dec = nn.Sequential(nn.Conv2d(D, 64, 3, 1, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                        nn.ConvTranspose2d(32, 1, 4, 2, 1))
    x = torch.rand(B, 1, S, S)
    with torch.no_grad():
        rows = enc(x).permute(0, 2, 3, 1).reshape(-1, D)
        pick = torch.randperm(rows.shape[0])[:K]
        codebook.weight.copy_(rows[pick] + 0.05 * rows.std() * torch.randn(K, D))
    weights = {}
    for prefix, mod in (("encoder", enc), ("decoder", dec)):
        for n, p in mod.named_parameters():
            weights[f"{prefix}.{n}"] = p.detach().clone()
    weights["codebook.weight"] = codebook.weight.detach().clone()
    # LatentLab's tensor order (vqvae.cpp's constructor).
    order = ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias", "encoder.4.weight",
             "encoder.4.bias", "codebook.weight", "decoder.0.weight", "decoder.0.bias", "decoder.2.weight",
             "decoder.2.bias", "decoder.4.weight", "decoder.4.bias"]
    return {n: weights[n] for n in order}, x


def network(w, x, masks=None, absolute=False):
    """Encoder and decoder as functions of the weight dict w (float64). masks None: the real network,
    recording its ReLU masks into a new list; else: the absolute-value network reusing those masks."""
    rec = [] if masks is None else None
    it = iter(masks) if masks is not None else None

    def relu(t):
        if rec is not None:
            rec.append((t > 0).double())
            rec_pre.append(t.detach())
            return F.relu(t)
        return t * next(it)

    rec_pre = []
    A = (lambda t: t.abs()) if absolute else (lambda t: t)
    h = relu(F.conv2d(x, A(w["encoder.0.weight"]), A(w["encoder.0.bias"]), 2, 1))
    h = relu(F.conv2d(h, A(w["encoder.2.weight"]), A(w["encoder.2.bias"]), 2, 1))
    ze = F.conv2d(h, A(w["encoder.4.weight"]), A(w["encoder.4.bias"]))

    def decoder(zq):
        d = relu(F.conv2d(zq, A(w["decoder.0.weight"]), A(w["decoder.0.bias"]), 1, 1))
        d = relu(F.conv_transpose2d(d, A(w["decoder.2.weight"]), A(w["decoder.2.bias"]), 2, 1))
        return F.conv_transpose2d(d, A(w["decoder.4.weight"]), A(w["decoder.4.bias"]), 2, 1)

    return ze, decoder, rec, rec_pre


def main():
    torch.set_num_threads(1)
    for seed in range(1, 200):
        if make(seed):
            return
    raise SystemExit("no seed in 1..199 gives a batch without near-ties")


def make(seed):
    w32, x32 = build(seed)
    w = {n: t.double().requires_grad_(True) for n, t in w32.items()}
    x = x32.double()

    # ---- the real network, float64, PyTorch autograd ----
    ze, decoder, masks, pres = network(w, x)
    E = w["codebook.weight"]
    rows = ze.permute(0, 2, 3, 1).reshape(-1, D)                        # [B*G, D], raster order
    dist = (E * E).sum(1)[None, :] - 2 * rows @ E.T                      # ||e||^2 - 2 z.e
    idx = dist.argmin(1)
    zq = E[idx].view(B, g, g, D).permute(0, 3, 1, 2)                     # [B, D, g, g]
    zq_st = ze + (zq - ze).detach()                                      # straight-through
    logits = decoder(zq_st)
    xhat = torch.sigmoid(logits)
    mse = ((xhat - x) ** 2).flatten(1).sum(1)
    cb = SCALE * ((ze.detach() - zq) ** 2).flatten(1).sum(1)
    commit = BETA * SCALE * ((ze - zq.detach()) ** 2).flatten(1).sum(1)
    (mse.sum() + cb.sum() + commit.sum()).backward()
    masks = masks  # encoder's 2 then decoder's 2

    # ---- path length N: every reduction along the longest path (see the docstring) ----
    fwd = [1 * 16, 32 * 16, 64, D * 9, 64 * 16, 32 * 16]                # C*KH*KW of each conv
    bwd = [1 * 16, 32 * 16, 64 * 9, D, 64 * 16]                          # OC*KH*KW of each input gradient
    wgrad = B * P                                                       # the largest weight-gradient sum
    N = sum(fwd) + sum(bwd) + wgrad + D + 16                            # + the distance, element-wise ops
    gamma = N * U / (1 - N * U)

    # ---- the absolute-value network ----
    wa = {n: t.detach().abs().requires_grad_(True) for n, t in w.items()}
    ze_a, decoder_a, _, _ = network(wa, x.abs(), masks=masks, absolute=True)
    Ea = wa["codebook.weight"]
    zq_abs = Ea[idx].view(B, g, g, D).permute(0, 3, 1, 2)
    zq_st_a = zq_abs.detach() + ze_a - ze_a.detach()                     # the straight-through path
    logits_a = decoder_a(zq_st_a)
    # Upstream: |d loss/d logit| plus its forward error's bound (|d/dy 2 (sigmoid - x) sigmoid'| < 1).
    dlogit = 2 * (xhat - x) * xhat * (1 - xhat)
    up = dlogit.detach().abs() + logits_a.detach()
    diff = (ze - zq).detach().abs()
    f_abs = (up * logits_a).sum()
    f_abs = f_abs + 2 * BETA * SCALE * ((diff + ze_a.detach() + zq_abs.detach()) * ze_a).sum()
    f_abs = f_abs + 2 * SCALE * ((diff + ze_a.detach() + zq_abs.detach()) * zq_abs).sum()
    f_abs.backward()

    # ---- refuse near-ties: ReLU inputs and nearest codes ----
    # A ReLU input's own forward error is within gamma_n of its absolute value, n = the forward
    # reductions before it (encoder.0, encoder.2; decoder.0, decoder.2 after the whole encoder).
    _, _, _, pres_a = network({n: t.detach() for n, t in wa.items()}, x.abs(), masks=None, absolute=True)
    # (the absolute network without masks bounds the masked one)
    before = [fwd[0], fwd[0] + fwd[1], sum(fwd[:4]) + D, sum(fwd[:5]) + D]
    worst = min(((p.abs() / (pa + 1e-300)).min().item() / (math.sqrt(n) * U) for p, pa, n in zip(pres, pres_a, before)))
    if worst < 10:
        return False
    rows_a = ze_a.detach().permute(0, 2, 3, 1).reshape(-1, D)
    two = dist.detach().topk(2, dim=1, largest=False).values
    gap = two[:, 1] - two[:, 0]
    # The distance's own rounding (D + 2 terms) and z_e's forward error (sqrt(n) u of its absolute value).
    Ed = E.detach()
    n_enc = sum(fwd[:3])
    dist_err = (U * (D + 2) * ((Ed ** 2).sum(1)[None, :] + 2 * rows.detach().abs() @ Ed.abs().T)
                + 2 * U * math.sqrt(n_enc) * rows_a @ Ed.abs().T).max(1).values
    if not (gap > 10 * dist_err).all():
        return False

    # ---- one EMA step (t = 1: the averages are the batch's counts and sums) ----
    eps = 1e-5
    zr = rows.detach()
    count = torch.zeros(K, dtype=torch.float64).index_add_(0, idx, torch.ones(len(idx), dtype=torch.float64))
    sums = torch.zeros(K, D, dtype=torch.float64).index_add_(0, idx, zr)
    sums_a = torch.zeros(K, D, dtype=torch.float64).index_add_(0, idx, rows_a)
    n = count.sum()
    smoothed = (count + eps) / (n + K * eps) * n
    ema = E.detach().clone()
    ema_a = E.detach().abs().clone()
    used = count > 0
    ema[used] = sums[used] / smoothed[used, None]
    ema_a[used] = (sums_a[used] + sums[used].abs()) / smoothed[used, None]

    # ---- the sums of absolute values of the forward values ----
    logit_err = logits_a.detach()                                         # / gamma
    xhat_a = 0.25 * logit_err + 1.0                                       # sigmoid' <= 1/4; + ulps
    mse_a = (2 * (xhat - x).abs().detach() * xhat_a).flatten(1).sum(1) + mse.detach()
    sq_a = (2 * diff * ze_a.detach() + diff ** 2).flatten(1).sum(1)
    tensors = [(f"w.{k}", v) for k, v in w32.items()]
    tensors += [("x", x32.view(B, P)), ("idx", idx.double()),
                ("z_e", ze.detach()), ("abs.z_e", ze_a.detach()),
                ("xhat", xhat.detach().view(B, P)), ("abs.xhat", xhat_a.view(B, P)),
                ("mse", mse.detach()), ("abs.mse", mse_a),
                ("codebook", cb.detach()), ("abs.codebook", SCALE * sq_a),
                ("commitment", commit.detach()), ("abs.commitment", BETA * SCALE * sq_a),
                ("ema_codebook", ema), ("abs.ema_codebook", ema_a)]
    for name in w32:
        tensors += [(f"grad.{name}", w[name].grad.detach().float()), (f"abs.grad.{name}", wa[name].grad.detach().float())]
    meta = {
        "what": "VQ-VAE (core/models/vqvae.h) golden reference; made by tests/golden/make_vqvae_golden.py",
        "torch": torch.__version__,
        "config": f'{{"kind":"vqvae","input":{P},"codebook_size":{K},"code_dim":{D},"commitment":{BETA},'
                  f'"ema":0,"dead_code_steps":0,"sigmoid_output":1}}',
        "batch": str(B),
        "path_length": str(N),
        "seed": str(seed),
        "worst_relu_margin_over_its_bound": f"{worst:.3g}",
        "worst_code_gap_over_bound": f"{(gap / dist_err).min().item():.3g}",
        "codes_used": str(int(used.sum().item())),
    }
    golden_io.save("tests/golden/vqvae_golden.safetensors", tensors, meta)
    print({k: meta[k] for k in ("seed", "path_length", "worst_relu_margin_over_its_bound", "worst_code_gap_over_bound", "codes_used")})
    return True


if __name__ == "__main__":
    main()
