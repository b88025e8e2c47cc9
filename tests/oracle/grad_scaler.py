"""Oracle for the loss scaler (src/optim/grad_scaler.ts): torch's GradScaler logic over a scripted run.

torch 1.13, the version on this machine, has `_amp_foreach_non_finite_check_and_unscale_` and
`_amp_update_scale_` for CUDA only ("Could not run ... with arguments from the 'CPU' backend"), and this
machine has no CUDA. So both are written out below from their CUDA kernels
(aten/src/ATen/native/cuda/AmpKernels.cu), with the reciprocal that GradScaler.unscale_ takes
(torch/cuda/amp/grad_scaler.py: `inv_scale = self._scale.double().reciprocal().float()`).

Ten steps of a run with two parameters, one under SGD with momentum and one under AdamW. Each step's
gradients are drawn from a seed and multiplied by the scale of that step (what backward seeded with the
scale yields); steps 0, 4 and 8 carry an inf or NaN, so torch skips optimizer.step() there and backs the
scale off, and with growthInterval 3 it grows after steps 3 and 7. Recorded per step: the unscaled
gradients, the scale and growth tracker after update(), and the parameters.

Two AdamW tracks: "adamw_torch" as torch runs it (skipped steps never reach the optimizer) and
"adamw_counted" as src/optim/grad_scaler.ts documents that we run it: a skipped update still counts
towards the bias correction, and a skipped first update leaves zero moments. That track is torch's own
AdamW with its state's step advanced on skipped steps. SGD (dampening 0) needs no second track: a zero
momentum buffer gives torch's first buffer exactly.

A second, short run starts near the top of the f32 range to check that growth which would overflow keeps
the scale. tests/grad_scaler.test.ts holds the same options.
"""
import torch

from fixture_io import generator, randn, save

STEPS = 10
OPTIONS = dict(init_scale=3000.0, growth_factor=1.5, backoff_factor=0.375, growth_interval=3)
SGD_OPTIONS = dict(lr=0.1, momentum=0.9, weight_decay=1e-3)
ADAMW_OPTIONS = dict(lr=0.01, weight_decay=0.02)
SHAPES = {"sgd": (5, 3), "adamw": (7,)}
# step: (parameter, flat element, value) of the non-finite gradient element injected at that step
INJECTED = {0: ("sgd", 4, float("inf")), 4: ("adamw", 2, float("nan")), 8: ("sgd", 11, float("-inf"))}


def unscale(grads, found_inf, inv_scale):
    """_amp_foreach_non_finite_check_and_unscale_: flags a non-finite input, multiplies in f32."""
    for g in grads:
        if not torch.isfinite(g).all():
            found_inf.fill_(1.0)
        if inv_scale.item() != 1.0:
            g.mul_(inv_scale)


def update_scale(scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval):
    """_amp_update_scale_: the products are taken in float64 (the factors are doubles), stored as f32."""
    if found_inf.item():
        scale.fill_((scale.double() * backoff_factor).item())
        growth_tracker.fill_(0)
    else:
        successful = growth_tracker.item() + 1
        if successful == growth_interval:
            new_scale = (scale.double() * growth_factor).float()
            if torch.isfinite(new_scale).all():
                scale.copy_(new_scale)
            growth_tracker.fill_(0)
        else:
            growth_tracker.fill_(successful)


def count_skipped_update(optimizer, param):
    """Our documented AdamW behaviour on a skipped step: the count advances, moments stay (zero if new)."""
    state = optimizer.state[param]
    if len(state) == 0:
        state["step"] = torch.tensor(0.0)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    state["step"] += 1


g = generator(2024)
initial = {name: randn(g, *shape) for name, shape in SHAPES.items()}
out = {f"{name}_initial": value.clone() for name, value in initial.items()}
sgd_param = initial["sgd"].clone().requires_grad_()
adamw_torch_param = initial["adamw"].clone().requires_grad_()
adamw_counted_param = initial["adamw"].clone().requires_grad_()
sgd = torch.optim.SGD([sgd_param], **SGD_OPTIONS)
adamw_torch = torch.optim.AdamW([adamw_torch_param], **ADAMW_OPTIONS)
adamw_counted = torch.optim.AdamW([adamw_counted_param], **ADAMW_OPTIONS)

scale = torch.full((1,), OPTIONS["init_scale"], dtype=torch.float32)
growth_tracker = torch.zeros(1, dtype=torch.int32)
scales, trackers, found = [], [], []
for step in range(STEPS):
    grads = {name: randn(g, *shape) * scale for name, shape in SHAPES.items()}
    if step in INJECTED:
        name, index, value = INJECTED[step]
        grads[name].view(-1)[index] = value
    for name, grad in grads.items():
        out[f"grad_{name}_step{step}"] = grad.clone()
    inv_scale = scale.double().reciprocal().float()
    found_inf = torch.zeros(1, dtype=torch.float32)
    unscale(list(grads.values()), found_inf, inv_scale)
    for name, grad in grads.items():
        out[f"unscaled_{name}_step{step}"] = grad.clone()
    if found_inf.item():
        count_skipped_update(adamw_counted, adamw_counted_param)
    else:
        sgd_param.grad = grads["sgd"].clone()
        adamw_torch_param.grad = grads["adamw"].clone()
        adamw_counted_param.grad = grads["adamw"].clone()
        for optimizer in (sgd, adamw_torch, adamw_counted):
            optimizer.step()
    update_scale(scale, growth_tracker, found_inf, OPTIONS["growth_factor"], OPTIONS["backoff_factor"],
                 OPTIONS["growth_interval"])
    found.append(int(found_inf.item()))
    scales.append(scale.item())
    trackers.append(growth_tracker.item())
    out[f"sgd_step{step}"] = sgd_param.detach().clone()
    out[f"adamw_torch_step{step}"] = adamw_torch_param.detach().clone()
    out[f"adamw_counted_step{step}"] = adamw_counted_param.detach().clone()

assert found == [int(step in INJECTED) for step in range(STEPS)], found
out["found_inf"] = torch.tensor(found, dtype=torch.int32)
out["scale"] = torch.tensor(scales, dtype=torch.float32)
out["growth_tracker"] = torch.tensor(trackers, dtype=torch.int32)
out["state_sgd_momentum_buffer"] = sgd.state[sgd_param]["momentum_buffer"].clone()
for slot in ("exp_avg", "exp_avg_sq", "step"):
    out[f"state_adamw_counted_{slot}"] = adamw_counted.state[adamw_counted_param][slot].reshape(-1).float()

# Growth that would overflow f32 keeps the scale; the tracker still resets.
OVERFLOW_STEPS = 2
overflow_scale = torch.full((1,), 1.5 * 2.0**127, dtype=torch.float32)
overflow_tracker = torch.zeros(1, dtype=torch.int32)
overflow_scales, overflow_trackers = [], []
for _ in range(OVERFLOW_STEPS):
    update_scale(overflow_scale, overflow_tracker, torch.zeros(1), 2.0, 0.5, 1)
    overflow_scales.append(overflow_scale.item())
    overflow_trackers.append(overflow_tracker.item())
assert overflow_scales == [1.5 * 2.0**127] * OVERFLOW_STEPS, overflow_scales
out["overflow_scale"] = torch.tensor(overflow_scales, dtype=torch.float32)
out["overflow_growth_tracker"] = torch.tensor(overflow_trackers, dtype=torch.int32)

save("grad_scaler", out)
