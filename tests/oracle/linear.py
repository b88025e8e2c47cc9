"""Oracle for Linear: F.linear forward and the gradients of x, W and b under an upstream gradient."""
import torch.nn.functional as F

from fixture_io import generator, randn, save

g = generator(2)
# odd: no dimension a multiple of any tile, and more rows than one tile; batch1: a single row.
for label, (rows, in_features, out_features, with_bias) in {
    "odd": (70, 50, 37, True),
    "batch1": (1, 13, 5, True),
    "nobias": (9, 20, 11, False),
}.items():
    x = randn(g, rows, in_features).requires_grad_()
    weight = randn(g, out_features, in_features, scale=in_features ** -0.5).requires_grad_()
    bias = randn(g, out_features).requires_grad_() if with_bias else None
    up = randn(g, rows, out_features)
    out = F.linear(x, weight, bias)
    (out * up).sum().backward()
    arrays = {"x": x, "weight": weight, "up": up, "out": out, "grad_x": x.grad, "grad_weight": weight.grad}
    if with_bias:
        arrays.update({"bias": bias, "grad_bias": bias.grad})
    save(f"linear_{label}", arrays)
