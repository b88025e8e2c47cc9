"""Oracle for conv2d under autocast (f16 operands, f32 accumulation) and for the f32 -> f16 rounding.

conv2d_f16_<case>: x, weight and the upstream gradient `up` as f32; out, grad_x and grad_weight computed in
float64 from their f16 roundings (torch's .half(): round to nearest even, overflow to infinity), as a
kernel that multiplies f16 operands exactly and accumulates in f32 computes them up to f32 roundoff; and
out_f32, the plain f32 output, so the test can check that the rounding is visible at its tolerance.
half_rounding: f32 values around every edge of the conversion and their f16 bit patterns (checked against the GPU's
toHalf in tests/autocast.test.ts and the CPU's floatToHalf in tests/half.test.ts).
"""
import struct

import torch
import torch.nn.functional as F

from fixture_io import generator, randn, save

# name: (batch, cin, cout, height, width, kernel, stride, padding)
CASES = {
    "large_s1": (2, 16, 24, 12, 12, 3, 1, 1),
    "large_s2": (2, 16, 24, 10, 10, 3, 2, 1),
    "k1_s2": (2, 4, 6, 9, 9, 1, 2, 0),
    "k7_s2": (2, 3, 4, 9, 8, 7, 2, 3),
}

g = generator(11)
for name, (batch, cin, cout, height, width, kernel, stride, padding) in CASES.items():
    x = randn(g, batch, cin, height, width)
    w = randn(g, cout, cin, kernel, kernel, scale=(2.0 / (cout * kernel * kernel)) ** 0.5)
    out_f32 = F.conv2d(x, w, stride=stride, padding=padding)
    # A loss-scaled gradient: large enough that f16 keeps its precision.
    up = randn(g, *out_f32.shape, scale=1024.0)
    x64 = x.half().double().requires_grad_()
    w64 = w.half().double().requires_grad_()
    out = F.conv2d(x64, w64, stride=stride, padding=padding)
    (out * up.half().double()).sum().backward()
    save(f"conv2d_f16_{name}", {
        "x": x, "weight": w, "up": up, "out": out, "grad_x": x64.grad, "grad_weight": w64.grad,
        "out_f32": out_f32, "config": torch.tensor([stride, padding], dtype=torch.int32),
    })


def f32(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


edges = [
    0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 65519.996, 65520.0, -65520.0, 1e6, float("inf"), float("-inf"),
    float("nan"), 2.0**-14, 2.0**-14 * (1 - 2**-12), 2.0**-24, 2.0**-25, -(2.0**-25), 2.0**-25 * 1.0000001,
    1.5 * 2.0**-24, 2.5 * 2.0**-24, 3.5 * 2.0**-24, 2.0**-26, 1e-30,
    # Mantissa ties just above 1: 1 + 2^-11 (ties to 1), 1 + 3 * 2^-11 (ties to 1 + 2^-9), and neighbours.
    1 + 2.0**-11, 1 + 3 * 2.0**-11, f32(0x3F800FFF), f32(0x3F801001), 2047.5, 2048.5, 4095.0,
]
values = torch.tensor(edges, dtype=torch.float32)
spread = torch.cat([
    torch.randn(200, generator=g) * scale for scale in (1e-7, 1e-5, 1e-3, 1.0, 1e3, 3e4, 1e5)
])
values = torch.cat([values, spread.float()])
save("half_rounding", {"values": values, "bits": values.half().view(torch.int16).to(torch.int32) & 0xFFFF})
