#!/usr/bin/python3
"""Writes conv_golden.json: PyTorch conv2d / conv_transpose2d forward and autograd backward on small
seeded inputs, as flat float lists (row-major, PyTorch layouts). tests/test_conv.cpp compares
LatentLab's convolutions against it. Run with Debian's python3-torch:
    /usr/bin/python3 tests/golden/make_conv_golden.py
"""
import json
import os

import torch
import torch.nn.functional as F

# kind, B, C, H, W, OC, K, stride, pad
CONFIGS = [
    ("conv2d", 2, 2, 8, 6, 3, 4, 2, 1),
    ("conv2d", 1, 3, 5, 7, 2, 3, 1, 1),
    ("conv_transpose2d", 2, 3, 3, 4, 2, 4, 2, 1),
    ("conv_transpose2d", 1, 2, 4, 3, 3, 3, 1, 1),
    ("conv_transpose2d", 1, 2, 3, 2, 2, 3, 2, 0),
]


def flat(t):
    return [float(f"{v:.9g}") for v in t.detach().reshape(-1).tolist()]


def main():
    torch.manual_seed(1234)
    cases = []
    for kind, B, C, H, W, OC, K, stride, pad in CONFIGS:
        inp = torch.empty(B, C, H, W).uniform_(-1, 1).requires_grad_()
        wshape = (OC, C, K, K) if kind == "conv2d" else (C, OC, K, K)
        weight = torch.empty(wshape).uniform_(-0.5, 0.5).requires_grad_()
        bias = torch.empty(OC).uniform_(-0.5, 0.5).requires_grad_()
        fn = F.conv2d if kind == "conv2d" else F.conv_transpose2d
        out = fn(inp, weight, bias, stride=stride, padding=pad)
        dout = torch.empty_like(out).uniform_(-1, 1)
        out.backward(dout)
        cases.append({
            "kind": kind, "B": B, "C": C, "H": H, "W": W, "OC": OC, "K": K, "stride": stride,
            "pad": pad, "OH": out.shape[2], "OW": out.shape[3],
            "inp": flat(inp), "weight": flat(weight), "bias": flat(bias), "dout": flat(dout),
            "out": flat(out), "dinp": flat(inp.grad), "dweight": flat(weight.grad),
            "dbias": flat(bias.grad),
        })
    doc = {"generator": "tests/golden/make_conv_golden.py", "torch": torch.__version__,
           "cases": cases}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv_golden.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
