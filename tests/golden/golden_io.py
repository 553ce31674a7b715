"""Shared by make_vqvae_golden.py and make_pixelcnn_prior_golden.py: a safetensors writer that keeps
each tensor's dtype (F32 weights, F64 reference values), since Debian has no safetensors package.
Layout: 8-byte little-endian header length, JSON header padded with spaces to a multiple of 8, then
the tensors' little-endian data, contiguous, in the given order."""
import json
import struct

import torch

_NAMES = {torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8")}


def save(path, tensors, metadata):
    """tensors: list of (name, tensor) with dtype float32 or float64; metadata: dict of strings."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        dtype, np_type = _NAMES[t.dtype]
        b = t.detach().contiguous().numpy().astype(np_type).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = dict(metadata)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
