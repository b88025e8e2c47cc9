"""Oracle for an end-to-end op chain, a miniature spiking residual block with a classifier head:

x (T*B, Cin, H, W) -> conv 3x3 s1 p1 -> BN -> LIF -> [conv 3x3 s2 p1 -> BN] + [conv 1x1 s2 -> BN] -> LIF
  -> adaptive_avg_pool2d(1) -> flatten -> linear -> mean over T -> cross-entropy (batch mean)

BN is in training mode (batch statistics, running statistics updated). The LIF neurons are
sml_models.Lif (SPEC §2, Dspike, the time loop in autograd). The fixture holds the inputs, the parameters
and running statistics before the step, the logits and loss, the running statistics after the forward and
the gradient of every parameter and of x.

The input is redrawn (seeded) until every membrane potential u_t keeps MARGIN from the threshold and from
the edges of the Dspike region, where f32 rounding in the chain could flip a spike or a surrogate
gradient, and its float32 replays with perturbed weights agree (margins.py); the fixture records it
under margin.*.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture_io import generator, randn, save
from margins import FORWARD, GRADIENT, Replays, draw_case
from sml_models import Lif

MARGIN = 1e-4
T, B, CIN, C1, C2, H, W, CLASSES = 2, 2, 3, 4, 6, 7, 7, 5


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(CIN, C1, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(C1)
        self.conv2 = nn.Conv2d(C1, C2, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(C2)
        self.shortcut = nn.Conv2d(C1, C2, 1, 2, 0, bias=False)
        self.bn_shortcut = nn.BatchNorm2d(C2)
        self.linear = nn.Linear(C2, CLASSES)
        self.lif = Lif()
        self.lif.T = T

    def forward(self, x):
        h = self.lif(self.bn1(self.conv1(x)))
        z = self.lif(self.bn2(self.conv2(h)) + self.bn_shortcut(self.shortcut(h)))
        features = torch.flatten(F.adaptive_avg_pool2d(z, 1), 1)
        logits = self.linear(features)
        return logits.reshape(T, B, -1).mean(0), h, z


def init(model, g):
    """Convs at twice the Kaiming std and BN biases shifted up, so that the narrow layers spike; running
    statistics away from their defaults so the momentum update is visible."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                cout, _, kh, kw = module.weight.shape
                module.weight.copy_(randn(g, *module.weight.shape, scale=2 * (2.0 / (cout * kh * kw)) ** 0.5))
            elif isinstance(module, nn.BatchNorm2d):
                c = module.weight.shape[0]
                module.weight.copy_(1 + randn(g, c, scale=0.2))
                module.bias.copy_(0.3 + randn(g, c, scale=0.2))
                module.running_mean.copy_(randn(g, c, scale=0.1))
                module.running_var.copy_(0.5 + torch.rand(c, generator=g))
            elif isinstance(module, nn.Linear):
                bound = module.weight.shape[1] ** -0.5
                module.weight.copy_((torch.rand(module.weight.shape, generator=g) * 2 - 1) * bound)
                module.bias.copy_((torch.rand(module.bias.shape, generator=g) * 2 - 1) * bound)


BATCH_NORMS = ("bn1", "bn2", "bn_shortcut")


def running_stats(model, suffix):
    out = {}
    for name in BATCH_NORMS:
        bn = getattr(model, name)
        out[f"{name}.running_mean{suffix}"] = bn.running_mean.clone()
        out[f"{name}.running_var{suffix}"] = bn.running_var.clone()
    return out


def replay_run(model, inputs, recorder, backward=True):
    """The step as the test checks it, for margins.Replays: everything compared, by fixture key."""
    x, labels = inputs
    model.train()
    model.lif.recorder = recorder
    leaf = x.clone().requires_grad_()
    logits, _, _ = model(leaf)
    if not backward:
        return {}
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    compared = {"logits": (logits, FORWARD), "loss": (loss, FORWARD), "grad_x": (leaf.grad, GRADIENT)}
    compared.update({f"grad_{key}": (p.grad, GRADIENT) for key, p in model.named_parameters()})
    compared.update({key: (value, FORWARD) for key, value in running_stats(model, "_after").items()})
    return compared


def draw_input(model, g, seed):
    """A fresh x until every LIF membrane keeps MARGIN from the threshold and the Dspike region edges
    (u recorded in float64 on a float64 copy of the model), both LIF layers fire some but not all of their
    neurons, and float32 replays agree. Returns x, the labels and the margin.* record."""
    def draw(_attempt):
        return [randn(g, T * B, CIN, H, W), torch.randint(0, CLASSES, (B,), generator=g, dtype=torch.int64)]

    def fires(inputs):
        probe = copy.deepcopy(model).double()
        with torch.no_grad():
            _, h, z = probe(inputs[0].double())
        return (0 < h.mean() < 1) and (0 < z.mean() < 1)

    (x, labels), _, record = draw_case(Replays(replay_run), model, draw, MARGIN, 100, seed, accept=fires)
    return x, labels, record


def case(name, seed):
    g = generator(seed)
    model = Chain()
    init(model, g)
    x, labels, record = draw_input(model, g, seed)
    out = {"x": x, "labels": labels.to(torch.int32)}
    out.update({key: torch.tensor(value, dtype=torch.int64 if isinstance(value, int) else torch.float64)
                for key, value in record.items()})
    out.update({key: value.detach().clone() for key, value in model.state_dict().items()
                if "num_batches_tracked" not in key and "running" not in key})
    out.update(running_stats(model, "_before"))
    model.train()
    leaf = x.clone().requires_grad_()
    logits, h, z = model(leaf)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out.update(running_stats(model, "_after"))
    out.update({"logits": logits, "loss": loss.reshape(()), "grad_x": leaf.grad})
    out.update({f"grad_{key}": parameter.grad for key, parameter in model.named_parameters()})
    print(f"{name}: loss {loss.item():.4f}, firing rates {h.mean().item():.3f} {z.mean().item():.3f}, margins "
          f"{record['margin.threshold']:.2e} / {record['margin.region']:.2e}, replays: drift "
          f"{record['margin.replay_drift']:.2e}, ratios {record['margin.replay_ratio_forward']:.3f} / "
          f"{record['margin.replay_ratio_gradient']:.3f}")
    save(f"op_chain_{name}", out)


case("t2", 41)
