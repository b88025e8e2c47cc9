"""Oracle for batch normalisation: torch.nn.BatchNorm2d / BatchNorm1d with random affine parameters and
running statistics, in training and evaluation mode: outputs, gradients of x / weight / bias for the loss
sum(y * up), and the running statistics after the call."""
import torch

from fixture_io import generator, randn, save


def case(name, seed, shape, training, momentum=0.1, eps=1e-5, offset=0.0, spread=1.0):
    g = generator(seed)
    channels = shape[1]
    bn = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(channels, eps=eps, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(1 + 0.3 * randn(g, channels))
        bn.bias.copy_(0.2 * randn(g, channels))
        bn.running_mean.copy_(0.5 * randn(g, channels))
        bn.running_var.copy_(0.5 + torch.rand(channels, generator=g))
    before = {"running_mean": bn.running_mean.clone(), "running_var": bn.running_var.clone()}
    bn.train(training)
    x = (offset + spread * randn(g, *shape)).requires_grad_()
    up = randn(g, *shape)
    y = bn(x)
    (y * up).sum().backward()
    save(f"batch_norm_{name}", {
        "x": x, "up": up, "weight": bn.weight, "bias": bn.bias, **before,
        "y": y, "grad_x": x.grad, "grad_weight": bn.weight.grad, "grad_bias": bn.bias.grad,
        "running_mean_after": bn.running_mean, "running_var_after": bn.running_var,
        "params": torch.tensor([1.0 if training else 0.0, momentum, eps]),
    })


case("2d_train", 21, (4, 3, 5, 7), training=True)
case("2d_train_batch1", 22, (1, 5, 6, 7), training=True)
# 2,310 values per channel: more than one reduction chunk (2,048), with a mean large against the spread.
case("2d_train_chunks", 23, (2, 3, 33, 35), training=True, offset=20.0, spread=0.5)
case("2d_train_momentum", 24, (3, 7, 4, 3), training=True, momentum=0.3, eps=1e-3)
case("1d_train", 25, (6, 7), training=True)
case("2d_eval", 26, (4, 3, 5, 7), training=False)
case("1d_eval", 27, (5, 9), training=False)
