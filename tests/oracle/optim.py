"""Oracle for the optimizers (torch.optim.SGD / Adam / AdamW) and the learning-rate schedule.

Each optimizer case updates three parameters of odd shapes for five steps with fixed gradients drawn
from a seed, and stores the initial parameters, the gradients, the parameters after every step and the
optimizer state after the last step. The "_skip" cases give parameter 1 no gradient (grad None) at
steps 0 and 3, so torch skips it: its state is created late and its step count lags the others.
tests/optim.test.ts holds the same hyperparameters per case.
"""
import math
import warnings

import torch

from fixture_io import generator, randn, save

SHAPES = [(5, 3), (7,), (2, 3, 3, 3)]
STEPS = 5
SKIPPED = {(0, 1), (3, 1)}  # (step, parameter) pairs without a gradient in the "_skip" cases

CASES = {
    "sgd": (torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=5e-4)),
    "sgd_skip": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    "adam": (torch.optim.Adam, dict(lr=1e-3)),
    "adam_weight_decay": (torch.optim.Adam, dict(lr=1e-3, weight_decay=1e-2)),
    "adamw": (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.02)),
    "adamw_skip": (torch.optim.AdamW, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.02)),
}

SLOTS = ["momentum_buffer", "exp_avg", "exp_avg_sq", "step"]

for seed, (name, (optimizer_class, options)) in enumerate(CASES.items()):
    g = generator(100 + seed)
    params = [randn(g, *shape).requires_grad_() for shape in SHAPES]
    grads = [[randn(g, *shape) for shape in SHAPES] for _ in range(STEPS)]
    has_grad = torch.ones(STEPS, len(SHAPES))
    if name.endswith("_skip"):
        for step, index in SKIPPED:
            has_grad[step, index] = 0
    out = {"has_grad": has_grad}
    for i, p in enumerate(params):
        out[f"param{i}_initial"] = p.detach().clone()
    optimizer = optimizer_class(params, **options)
    for step in range(STEPS):
        for i, p in enumerate(params):
            p.grad = grads[step][i].clone() if has_grad[step, i] else None
            out[f"grad{i}_step{step}"] = grads[step][i]
        optimizer.step()
        for i, p in enumerate(params):
            out[f"param{i}_step{step}"] = p.detach().clone()
    for i, p in enumerate(params):
        for slot, value in optimizer.state[p].items():
            assert slot in SLOTS, slot
            if value is not None:  # plain SGD keeps momentum_buffer = None
                out[f"state_{slot}{i}"] = value.reshape(-1).float()
    save(f"optim_{name}", out)


def closed_form(epoch, base, epochs, warmup, eta_min):
    """The convention src/optim/schedule.ts implements, checked here against torch's own stepping."""
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    t_max = epochs - warmup
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (epoch - warmup) / t_max)) / 2


# name: (base lr, epochs, warm-up epochs, eta_min, epochs to record)
SCHEDULES = {
    "cosine": (0.01, 12, 0, 0.0, 30),  # past T_max too: torch's cosine is periodic
    "cosine_min": (4e-4, 9, 0, 1e-5, 10),
    "cosine_warmup": (4e-3, 10, 3, 1e-4, 11),
    "cifar": (0.01, 300, 0, 0.0, 301),  # SPEC §7: cosine to 0 over 300 epochs
}
schedules = {}
# SequentialLR steps the cosine scheduler with an explicit epoch at the milestone, which torch warns about.
warnings.filterwarnings("ignore", message="The epoch parameter")
for name, (base, epochs, warmup, eta_min, recorded) in SCHEDULES.items():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs - warmup, eta_min=eta_min)
    if warmup:
        linear = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1 / (warmup + 1), end_factor=1.0, total_iters=warmup)
        scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])
    else:
        scheduler = cosine
    lrs = []
    for epoch in range(recorded):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # a no-op (no gradient); stepping in torch's order keeps it from warning
        scheduler.step()
    for epoch, lr in enumerate(lrs):
        expected = closed_form(epoch, base, epochs, warmup, eta_min)
        assert abs(lr - expected) <= 1e-12 * base, (name, epoch, lr, expected)
    schedules[f"lr_{name}"] = torch.tensor(lrs, dtype=torch.float64)
save("optim_schedule", schedules)
