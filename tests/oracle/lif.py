"""Oracle for the multi-step LIF neuron (SPEC §2), written from the spec: a Heaviside autograd.Function
whose backward is the surrogate, looped over T in Python so autograd produces the reference BPTT (the
hard reset m = u * (1 - s) is differentiated, not detached).

Inputs are redrawn per neuron until no membrane u_t lies within 1e-3 of the threshold (where f32 rounding
could flip a spike) nor, for Dspike, within 1e-3 of the edges of its region (where the surrogate jumps).
"""
import math

import torch

from fixture_io import generator, randn, save

MARGIN = 1e-3


def dspike(gamma, region):
    def grad(z):
        inside = z.abs() <= region
        return torch.where(inside, gamma * (1 - torch.tanh(gamma * z) ** 2) / (2 * math.tanh(gamma * region)),
                           torch.zeros_like(z))
    return grad


def sigmoid(alpha):
    def grad(z):
        s = torch.sigmoid(alpha * z)
        return alpha * s * (1 - s)
    return grad


def atan(alpha):
    def grad(z):
        return alpha / 2 / (1 + (math.pi / 2 * alpha * z) ** 2)
    return grad


class Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, surrogate):
        ctx.save_for_backward(z)
        ctx.surrogate = surrogate
        return (z >= 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (z,) = ctx.saved_tensors
        return grad_output * ctx.surrogate(z), None


def lif(x, T, tau, theta, surrogate):
    """x: (T*B, ...) time-major -> (spikes, membranes u_t), both (T*B, ...)."""
    steps = x.reshape(T, -1, *x.shape[1:])
    m = torch.zeros_like(steps[0])
    spikes, membranes = [], []
    for t in range(T):
        u = tau * m + steps[t]
        s = Heaviside.apply(u - theta, surrogate)
        m = u * (1 - s)
        spikes.append(s)
        membranes.append(u)
    return torch.cat(spikes), torch.cat(membranes)


def draw_input(g, shape, T, tau, theta, edges):
    """Normal inputs around the threshold, redrawn per neuron until every u_t keeps MARGIN from `edges`."""
    x = randn(g, *shape, scale=0.9) + 0.6
    for _ in range(1000):
        with torch.no_grad():
            _, u = lif(x, T, tau, theta, None)
        near = torch.zeros(u.shape, dtype=torch.bool)
        for edge in edges:
            near |= (u - edge).abs() < MARGIN
        # A neuron is one position within a step; redraw all of its steps together.
        bad = near.reshape(T, -1).any(dim=0).repeat(T).reshape(shape)
        if not bad.any():
            return x
        x = torch.where(bad, randn(g, *shape, scale=0.9) + 0.6, x)
    raise RuntimeError("could not draw inputs away from the threshold")


def case(name, seed, T, feature_shape, batch, tau=0.5, theta=1.0, gamma=2.5, region=1.0,
         alpha_sigmoid=4.0, alpha_atan=2.0):
    g = generator(seed)
    shape = (T * batch, *feature_shape)
    edges = [theta, theta - region, theta + region]
    x = draw_input(g, shape, T, tau, theta, edges)
    up = randn(g, *shape)
    out = {"x": x, "up": up,
           "params": torch.tensor([T, tau, theta, gamma, region, alpha_sigmoid, alpha_atan], dtype=torch.float32)}
    surrogates = {"dspike": dspike(gamma, region), "sigmoid": sigmoid(alpha_sigmoid), "atan": atan(alpha_atan)}
    for label, surrogate in surrogates.items():
        xg = x.clone().requires_grad_()
        spikes, _ = lif(xg, T, tau, theta, surrogate)
        (spikes * up).sum().backward()
        out["spikes"] = spikes
        out[f"grad_{label}"] = xg.grad
    assert 0 < out["spikes"].mean() < 1, f"{name}: inputs should make some neurons fire and some not"
    save(f"lif_{name}", out)


case("t1_4d", 11, T=1, feature_shape=(3, 5, 7), batch=2)
case("t2_2d_batch1", 12, T=2, feature_shape=(37,), batch=1)
case("t4_4d", 13, T=4, feature_shape=(3, 5, 7), batch=2)
case("t4_2d_batch1", 14, T=4, feature_shape=(53,), batch=1)
case("t4_params", 15, T=4, feature_shape=(5, 3, 3), batch=3, tau=0.8, theta=0.7, gamma=4.0, region=0.5,
     alpha_sigmoid=2.0, alpha_atan=3.0)
