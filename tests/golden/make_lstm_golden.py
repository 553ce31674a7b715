#!/usr/bin/python3
"""Golden reference for LatentLab's LSTM layer (core/nn/lstm.h), computed by PyTorch's own nn.LSTM and
autograd in float64: tests/golden/lstm_golden.safetensors, read by tests/test_lstm.cpp
(Lstm.MatchesPyTorchGolden).

Run from the repository root with Debian 12's python3-torch:
    /usr/bin/python3 tests/golden/make_lstm_golden.py

One nn.LSTM(C = 5, H = 7) under torch.manual_seed(1) (PyTorch's default init), a sequence of T = 6 steps
of B = 3 sequences (time-major, as nn.LSTM without batch_first), a random initial state (h0, c0) and
a loss L = sum_t,b,j r[t,b,j] h[t,b,j] + sum_b,j rc[b,j] c_T[b,j] (weights r and rc ~ N(0, 1), so
every output and the final cell state carry gradient). The float32 weights and inputs are stored
(F32); the reference values are PyTorch's float64 results from those same float32 numbers (F64):
  w.<name>          weight_ih_l0 [4H, C], weight_hh_l0 [4H, H], bias_ih_l0 [4H], bias_hh_l0 [4H]
  x, h0, c0, r, rc  [T, B, C], [B, H], [B, H], [T, B, H], [B, H]
  h, c_last         nn.LSTM's output [T, B, H] and final cell state [B, H]
  bound.h           a first-order bound on |h_float32 - h| for any float32 evaluation order: the
                    rounding of each pre-activation sum (Higham's gamma_n times the sum of absolute
                    terms, n = C + H + 2), the error carried from h_{t-1} and c_{t-1} through the
                    gates (|sigmoid'| <= 1/4, |tanh'| <= 1), and 4 u |value| for each libm call and
                    product (u = 2^-24)
  grad.<name>, grad.x, grad.h0, grad.c0   dL/d(each), by autograd
"""
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golden_io  # noqa: E402

U = 2.0 ** -24
T, B, C, H = 6, 3, 5, 7


def gamma(n):
    return n * U / (1 - n * U)


def forward_bound(w, x, h0, c0):
    """The first-order error bound of the float32 forward, propagated step by step in float64."""
    W_ih, W_hh, b_ih, b_hh = (w[k].abs() for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    Wi, Wh, bi, bh = (w[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    h, c = h0, c0
    eh = torch.zeros_like(h0)
    ec = torch.zeros_like(c0)
    out = []
    for t in range(T):
        a = x[t] @ Wi.T + bi + h @ Wh.T + bh
        s = x[t].abs() @ W_ih.T + b_ih + h.abs() @ W_hh.T + b_hh
        ea = gamma(C + H + 2) * s + eh @ W_hh.T  # [B, 4H]
        i, f, g, o = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), torch.tanh(a[:, 2 * H:3 * H]), \
            torch.sigmoid(a[:, 3 * H:])
        ei = 0.25 * ea[:, :H] + 4 * U * i
        ef = 0.25 * ea[:, H:2 * H] + 4 * U * f
        eg = ea[:, 2 * H:3 * H] + 4 * U * g.abs()
        eo = 0.25 * ea[:, 3 * H:] + 4 * U * o
        c_new = f * c + i * g
        ec = f * ec + c.abs() * ef + i * eg + g.abs() * ei + 4 * U * (f * c.abs() + (i * g).abs())
        tc = torch.tanh(c_new)
        etc = ec + 4 * U * tc.abs()
        h = o * tc
        eh = o * etc + tc.abs() * eo + 4 * U * h.abs()
        c = c_new
        out.append(eh)
    return torch.stack(out)


def main():
    torch.manual_seed(1)
    lstm32 = nn.LSTM(C, H)
    x = torch.randn(T, B, C)
    h0 = 0.5 * torch.randn(B, H)
    c0 = 0.5 * torch.randn(B, H)
    r = torch.randn(T, B, H)
    rc = torch.randn(B, H)
    lstm = nn.LSTM(C, H).double()
    with torch.no_grad():
        for name, p in lstm32.named_parameters():
            getattr(lstm, name).copy_(p.double())
    xd, h0d, c0d = (v.double().requires_grad_(True) for v in (x, h0, c0))
    out, (hT, cT) = lstm(xd, (h0d.unsqueeze(0), c0d.unsqueeze(0)))
    loss = (out * r.double()).sum() + (cT[0] * rc.double()).sum()
    loss.backward()
    w = {name: p.detach() for name, p in lstm.named_parameters()}
    bound = forward_bound(w, xd.detach(), h0d.detach(), c0d.detach())
    tensors = []
    for name, p in lstm32.named_parameters():
        tensors.append(("w." + name, p.detach()))
    tensors += [("x", x), ("h0", h0), ("c0", c0), ("r", r), ("rc", rc)]
    tensors += [("h", out.detach()), ("c_last", cT[0].detach()), ("bound.h", bound)]
    for name, p in lstm.named_parameters():
        tensors.append(("grad." + name, p.grad.detach()))
    tensors += [("grad.x", xd.grad), ("grad.h0", h0d.grad), ("grad.c0", c0d.grad)]
    meta = {"T": str(T), "batch": str(B), "input_size": str(C), "hidden_size": str(H), "seed": "1",
            "torch": torch.__version__}
    path = os.path.join(HERE, "lstm_golden.safetensors")
    golden_io.save(path, tensors, meta)
    print("wrote", path, "max bound.h", float(bound.max()), "max |h|", float(out.abs().max()))


if __name__ == "__main__":
    main()
