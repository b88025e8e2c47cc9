"""Manual check that a safetensors file spikegpu exported loads into the PyTorch reference model with
load_state_dict(strict=True) and gives the same values. Usage (after exporting with the TS side):

  deno run -A tests/oracle/export_for_pytorch.ts /tmp/export.safetensors
  cd tests/oracle && /usr/bin/python3 check_export.py /tmp/export.safetensors
"""
import json
import struct
import sys

import numpy as np
import torch

from sml_models import SpikingResNet

DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    out = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[8 + length + begin:8 + length + end]
        out[key] = torch.from_numpy(np.frombuffer(raw, dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"]).copy())
    return out


state = read_safetensors(sys.argv[1])
model = SpikingResNet("resnet19", 10, 2, width=8, positions=(3, 3), module_width=16)
model.load_state_dict(state, strict=True)
for key, value in model.state_dict().items():
    assert torch.equal(value, state[key]), key
print(f"{sys.argv[1]}: {len(state)} entries loaded with strict=True, values identical")
