"""Oracle for adaptive average pooling: F.adaptive_avg_pool2d to 1x1, 2x2 and a non-square 3x2, with the
input gradient under an upstream gradient. Odd sizes give PyTorch's overlapping bins; 1x1 -> 2x2 repeats."""
import torch.nn.functional as F

from fixture_io import generator, randn, save

g = generator(3)
arrays = {}
for height, width in [(7, 7), (5, 3), (4, 4), (1, 1), (2, 2), (3, 3)]:
    x = randn(g, 2, 3, height, width)
    for out_h, out_w in [(1, 1), (2, 2), (3, 2)]:
        name = f"{height}x{width}_to_{out_h}x{out_w}"
        leaf = x.clone().requires_grad_()
        up = randn(g, 2, 3, out_h, out_w)
        out = F.adaptive_avg_pool2d(leaf, (out_h, out_w))
        (out * up).sum().backward()
        arrays.update({f"x_{name}": x, f"up_{name}": up, f"out_{name}": out, f"grad_{name}": leaf.grad})
save("pool_adaptive", arrays)
