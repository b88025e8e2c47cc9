"""Writes oracle fixtures as safetensors, by hand (Debian has no python3-safetensors), so the
TypeScript reader is checked against an independent writer."""
import json
import os
import struct

import torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.int32: "I32", torch.float16: "F16"}


def save(name, tensors):
    """Writes {key: tensor} to tests/fixtures/<name>.safetensors (keys sorted)."""
    header = {}
    blobs = []
    offset = 0
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous().cpu()
        if t.dtype == torch.float64:
            t = t.float()
        raw = t.numpy().tobytes()
        header[key] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - (8 + len(text)) % 8) % 8)
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, name + ".safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for raw in blobs:
            f.write(raw)


def generator(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float32) * scale
