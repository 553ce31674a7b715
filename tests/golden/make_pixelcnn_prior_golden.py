#!/usr/bin/python3
"""Golden reference for LatentLab's PixelCNN prior (core/models/pixelcnn.h), computed by PyTorch autograd
from the prior's file layout alone: tests/golden/pixelcnn_prior_golden.safetensors, read by
tests/test_pixelcnn.cpp (PixelCnn.MatchesPyTorchGolden).

Run from the repository root with Debian 12's python3-torch:
    /usr/bin/python3 tests/golden/make_pixelcnn_prior_golden.py

Two cases, prefixes "one." (a single masked stack, unconditional) and "two." (vertical + horizontal
stacks, class-conditional with 3 classes), each on a 4 x 5 grid of K = 6 codes, 8 channels, 2 residual
layers, kernels 5 and 3, a batch of B = 3 grids; metadata "<case>.config" is the PixelCnnConfig JSON.
Per case (F32 = weights and bounds' scales, F64 = reference values):
  w.<name>        the weights in LatentLab's in-memory layout (masked convolutions whole k x k with the
                  masked taps zero), PyTorch's default conv init under torch.manual_seed(seed), class
                  embeddings 0.3 N(0, 1) (LatentLab starts them at zero, which would test nothing)
  codes, labels   the batch: code grids [B, H*W] and class labels [B] (F64 holding integers)
  logits, nll     [B, K, H*W] and nats per grid [B]
  grad.<name>     d(sum_b nll_b)/d(weight), masked taps zero (those connections do not exist)
  abs.<value>     the sum of absolute values S of each reference value: the same expression with every
                  weight and upstream gradient replaced by its absolute value (the real forward's ReLU
                  masks kept), the forward's error bound carried into the upstream gradient
                  (|d softmax| <= 2 max_k |d logit_k|); the C++ test's bound is 2 gamma_N S + u |ref|,
                  gamma_N = N u / (1 - N u), u = 2^-24, N = "<case>.path_length": the summed lengths of
                  every reduction of the forward and the backward and one weight-gradient reduction
                  (Higham's gamma_n bound for a float32 sum of n terms in any order, carried to first
                  order through the network)
The masks are written here from the papers (van den Oord et al. 2016 a and b), not read from LatentLab;
the loss is also recomputed by tools/pytorch/prior_torch.py (which reads the file layout: kernels
cropped to the mask's box) and must agree. Near-ties of a ReLU input (within 10 times u sqrt(n) times
its absolute value, n the reductions before it: float32 could then flip the mask) make the script try
the next seed (metadata "<case>.seed").
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "pytorch"))
import golden_io  # noqa: E402
import prior_torch  # noqa: E402

U = 2.0 ** -24
B = 3


def mask(k, rows_above, centre):
    """k x k: every column of the rows above the centre if rows_above; the centre row's columns
    'left' (< centre), 'left+centre' (<= centre), 'whole' or 'none'."""
    m = torch.zeros(k, k, dtype=torch.float64)
    c = k // 2
    if rows_above:
        m[:c, :] = 1
    if centre == "left":
        m[c, :c] = 1
    elif centre == "left+centre":
        m[c, :c + 1] = 1
    elif centre == "whole":
        m[c, :] = 1
    return m


def layout(cfg):
    """LatentLab's tensor order (pixelcnn.cpp's constructor): name -> (shape, mask or None, kind for
    prior_torch.mask_box)."""
    K, C, L, ka, kb, two, N = cfg["K"], cfg["channels"], cfg["layers"], cfg["kernel_a"], cfg["kernel_b"], \
        cfg["stacks"] == 2, cfg["classes"]
    out = {}

    def conv(name, cin, cout, k, m, kind):
        out[name + ".weight"] = ([cout, cin, k, k], m, kind)
        out[name + ".bias"] = ([cout], None, None)

    conv("input_conv", K, C, ka, mask(ka, not two, "left"), "a")
    for i in range(L):
        conv(f"layers.{i}", C, C, kb, mask(kb, not two, "left+centre"), "b")
    conv("output.0", C, C, 1, None, None)
    conv("output.2", C, K, 1, None, None)
    if two:
        conv("input_vconv", K, C, ka, mask(ka, True, "none"), "va")
        conv("input_v2h", C, C, 1, None, None)
        for i in range(L):
            conv(f"vlayers.{i}", C, C, kb, mask(kb, True, "whole"), "vb")
            conv(f"v2h.{i}", C, C, 1, None, None)
    if N:
        names = ["cond_input_conv"] + [f"cond_layers.{i}" for i in range(L)] + ["cond_output"]
        if two:
            names += ["cond_input_vconv"] + [f"cond_vlayers.{i}" for i in range(L)]
        for n in names:
            out[n + ".weight"] = ([N, C], None, None)
    return out


def network(cfg, w, onehot, labels, masks=None):
    """The prior as a function of the weight dict w (float64). masks None: record the ReLU masks and
    inputs (the real network); else apply the given masks instead of ReLU (the absolute network)."""
    rec, pres = ([], []) if masks is None else (None, None)
    it = iter(masks) if masks is not None else None

    def relu(t):
        if rec is not None:
            rec.append((t > 0).double())
            pres.append(t.detach())
            return F.relu(t)
        return t * next(it)

    def conv(name, x):
        k = w[name + ".weight"].shape[-1]
        return F.conv2d(x, w[name + ".weight"], w[name + ".bias"], padding=k // 2)

    def bias(name):
        if not cfg["classes"]:
            return 0.0
        return w[name + ".weight"][labels][:, :, None, None]

    two = cfg["stacks"] == 2
    if two:
        v = relu(conv("input_vconv", onehot) + bias("cond_input_vconv"))
        pre = conv("input_conv", onehot) + conv("input_v2h", v)
    else:
        pre = conv("input_conv", onehot)
    h = relu(pre + bias("cond_input_conv"))
    for i in range(cfg["layers"]):
        if two:
            v = v + relu(conv(f"vlayers.{i}", v) + bias(f"cond_vlayers.{i}"))
            pre = conv(f"layers.{i}", h) + conv(f"v2h.{i}", v)
        else:
            pre = conv(f"layers.{i}", h)
        h = h + relu(pre + bias(f"cond_layers.{i}"))
    o = relu(conv("output.0", h) + bias("cond_output"))
    return conv("output.2", o), rec, pres


def path_length(cfg, lay):
    fwd = sum(s[1] * s[2] * s[3] for n, (s, _, _) in lay.items() if len(s) == 4)   # C_in k^2 per conv
    bwd = sum(s[0] * s[2] * s[3] for n, (s, _, _) in lay.items() if len(s) == 4)   # OC k^2 per input grad
    adds = 8 * (cfg["layers"] + 1)                 # residual sums, links, class biases, both ways
    return fwd, fwd + bwd + B * cfg["H"] * cfg["W"] + cfg["K"] + adds + 16


def make(cfg, seed):
    torch.manual_seed(seed)
    K, H, W = cfg["K"], cfg["H"], cfg["W"]
    lay = layout(cfg)
    w32 = {}
    for name, (shape, m, _) in lay.items():
        if name.startswith("cond_"):
            w32[name] = 0.3 * torch.randn(shape)
        elif name.endswith(".weight"):
            conv = nn.Conv2d(shape[1], shape[0], shape[2])   # PyTorch's default init
            wt = conv.weight.detach().clone()
            w32[name] = wt * m.float() if m is not None else wt
            w32[name[:-len("weight")] + "bias"] = conv.bias.detach().clone()
    w32 = {n: w32[n] for n in lay}
    codes = torch.randint(0, K, (B, H, W))
    labels = torch.randint(0, max(cfg["classes"], 1), (B,))
    onehot = F.one_hot(codes, K).permute(0, 3, 1, 2).double()

    w = {n: t.double().requires_grad_(True) for n, t in w32.items()}
    logits, masks, pres = network(cfg, w, onehot, labels)
    nll_cells = F.cross_entropy(logits, codes, reduction="none")               # [B, H, W]
    nll = nll_cells.sum(dim=(1, 2))
    nll.sum().backward()

    fwd, N = path_length(cfg, lay)
    wa = {n: t.detach().abs().requires_grad_(True) for n, t in w.items()}
    logits_a, _, _ = network(cfg, wa, onehot, labels, masks=masks)
    # Near-ties of ReLU inputs, against the unmasked absolute network (an upper bound of the masked one).
    _, _, pres_a = network(cfg, {n: t.detach() for n, t in wa.items()}, onehot, labels)
    margin = min((p.abs() / (pa + 1e-300)).min().item() for p, pa in zip(pres, pres_a)) / (math.sqrt(fwd) * U)
    if margin < 10:
        return None
    la = logits_a.detach()
    worst_logit = la.max(dim=1, keepdim=True).values                          # [B, 1, H, W]
    p = torch.softmax(logits.detach(), dim=1)
    dl = p - F.one_hot(codes, K).permute(0, 3, 1, 2).double()
    ((dl.abs() + 2 * worst_logit) * logits_a).sum().backward()

    # The file layout's own reading of the same weights (prior_torch.py: kernels cropped to the mask box).
    cropped = {}
    for name, (shape, m, kind) in lay.items():
        t = w32[name]
        if m is not None:
            r0, r1, c0, c1 = prior_torch.mask_box(kind, shape[-1], cfg["stacks"])
            t = t[:, :, r0:r1 + 1, c0:c1 + 1].contiguous()
        cropped[name] = t
    ref = prior_torch.PixelCnnPrior(cfg, cropped)   # float32
    with torch.no_grad():
        other = ref(codes, labels if cfg["classes"] else None)
    assert torch.allclose(other.double(), nll.detach(), rtol=1e-5), (other, nll)

    lse_abs = torch.logsumexp(logits.detach(), dim=1).abs() + logits.detach().gather(1, codes[:, None]).squeeze(1).abs()
    nll_a = (2 * worst_logit.squeeze(1) + lse_abs).sum(dim=(1, 2))
    tensors = [(f"w.{n}", t) for n, t in w32.items()]
    tensors += [("codes", codes.view(B, H * W).double()), ("labels", labels.double()),
                ("logits", logits.detach().view(B, K, H * W)), ("abs.logits", la.view(B, K, H * W)),
                ("nll", nll.detach()), ("abs.nll", nll_a)]
    for name, (shape, m, _) in lay.items():
        gr, ga = w[name].grad.detach(), wa[name].grad.detach()
        if m is not None:
            gr, ga = gr * m, ga * m
        tensors += [(f"grad.{name}", gr), (f"abs.grad.{name}", ga.float())]
    meta = {"config": json.dumps(cfg, separators=(",", ":")), "path_length": str(N), "seed": str(seed),
            "worst_relu_margin_over_its_bound": f"{margin:.3g}"}
    return tensors, meta


def main():
    torch.set_num_threads(1)
    base = {"K": 6, "H": 4, "W": 5, "channels": 8, "layers": 2, "kernel_a": 5, "kernel_b": 3}
    cases = {"one": dict(base, stacks=1, classes=0), "two": dict(base, stacks=2, classes=3)}
    tensors, meta = [], {"what": "PixelCNN prior (core/models/pixelcnn.h) golden reference; made by "
                                 "tests/golden/make_pixelcnn_prior_golden.py", "torch": torch.__version__,
                         "batch": str(B)}
    for case, cfg in cases.items():
        for seed in range(1, 200):
            made = make(cfg, seed)
            if made:
                break
        else:
            raise SystemExit(f"{case}: no seed in 1..199 without a ReLU near-tie")
        tensors += [(f"{case}.{n}", t) for n, t in made[0]]
        meta.update({f"{case}.{k}": v for k, v in made[1].items()})
    golden_io.save("tests/golden/pixelcnn_prior_golden.safetensors", tensors, meta)
    print(meta)


if __name__ == "__main__":
    main()
