"""Oracle for conv2d (no bias): output, input gradient and weight gradient for an upstream gradient."""
import torch
import torch.nn.functional as F

from fixture_io import generator, randn, save

# name: (batch, cin, cout, height, width, kernel, stride, padding)
CASES = {
    "k1": (2, 3, 5, 7, 7, 1, 1, 0),
    "k1_s2": (2, 4, 6, 9, 9, 1, 2, 0),
    "k3_p0": (1, 3, 5, 7, 7, 3, 1, 0),
    "k3_p1": (1, 3, 5, 9, 9, 3, 1, 1),
    "k3_s2": (2, 3, 5, 9, 9, 3, 2, 1),
    "k3_s2_even": (1, 2, 3, 8, 8, 3, 2, 0),
    "k3_s3_p2": (1, 3, 4, 7, 7, 3, 3, 2),
    "k5_s2": (1, 3, 5, 9, 9, 5, 2, 2),
    "k5_p3": (1, 2, 3, 7, 7, 5, 1, 3),
    "k7_s2": (2, 3, 4, 9, 8, 7, 2, 3),
    "large_s1": (2, 16, 24, 12, 12, 3, 1, 1),
    "large_s2": (2, 16, 24, 10, 10, 3, 2, 1),
}

g = generator(7)
for name, (batch, cin, cout, height, width, kernel, stride, padding) in CASES.items():
    x = randn(g, batch, cin, height, width).requires_grad_()
    w = randn(g, cout, cin, kernel, kernel, scale=(2.0 / (cout * kernel * kernel)) ** 0.5).requires_grad_()
    out = F.conv2d(x, w, stride=stride, padding=padding)
    up = randn(g, *out.shape)
    (out * up).sum().backward()
    save(f"conv2d_{name}", {
        "x": x, "weight": w, "up": up, "out": out, "grad_x": x.grad, "grad_weight": w.grad,
        "config": torch.tensor([stride, padding], dtype=torch.int32),
    })
