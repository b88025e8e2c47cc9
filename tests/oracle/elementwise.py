"""Oracle for the elementwise ops: residual add, LeakyReLU, scale."""
import torch
import torch.nn.functional as F

from fixture_io import generator, randn, save

g = generator(1)
for label, shape in {"small": (3, 5), "odd": (2, 3, 7, 5), "large": (2, 4, 33, 17)}.items():
    a = randn(g, *shape).requires_grad_()
    b = randn(g, *shape).requires_grad_()
    up = randn(g, *shape)
    add = a + b
    lrelu = F.leaky_relu(a, 0.01)
    scaled = a * 0.25
    (add * up).sum().backward(retain_graph=True)
    grad_add_a, grad_add_b = a.grad.clone(), b.grad.clone()
    a.grad = None
    (lrelu * up).sum().backward()
    grad_lrelu = a.grad.clone()
    save(f"elementwise_{label}", {
        "a": a, "b": b, "up": up, "add": add, "leaky_relu": lrelu, "scale": scaled,
        "grad_add_a": grad_add_a, "grad_add_b": grad_add_b, "grad_leaky_relu": grad_lrelu,
    })
