"""End-to-end oracle for SML training (SPEC §2-6): one training-mode forward and backward of a spiking
ResNet with two surrogate modules (positions [3, 3]) under the SML loss (temperature 3, alpha 0.5,
lambda 0.9), computed in float64 from float32 weights.

Fixtures:
- sml_<arch>_weights: the starting state_dict (random weights, perturbed BN statistics, nonzero counters),
  shared by T = 1 and T = 2; loaded by the TypeScript model with loadSafetensors.
- sml_<arch>_t<T>: input, labels, SNN and module logits, loss parts, every parameter gradient (grad.<key>),
  the BN running statistics and counters after the forward (after.<key>); for ResNet-18 also the gradient
  split at the attachment points (probe.*).
- sml_resnet19_full: the published-width ResNet-19 (width 64, k 256) initialised from the shared seeded
  generator (init_rng.py), so only the input, outputs, gradient norms and a sample of 16 gradient elements
  per parameter are stored.

Batch 4, not 2: with two samples, the modules' BN layers on 1x1 maps and the BN1d of the prediction head
normalise pairs, whose backward is a near-total cancellation (the exact input gradient is about
eps / d^2 of the incoming one). Its float32 value is then rounding noise: PyTorch float32 itself misses
float64 by up to 4x the gradient tolerance there. Four samples remove that ill-conditioning.

The threshold makes the network discontinuous: a membrane potential rounding to the other side of theta
in float32 flips a spike and changes everything downstream, and one near the edge of the surrogate region
(|u - theta| = r) switches a surrogate term on or off. The oracle re-draws the input until no float64
potential lies within the stated margin of either and float32 replays with every stored value moved by up
to 2 ulps fire the same spikes and pass the tests' tolerances (margins.py); the fixtures record it under
margin.*, which the tests check. Run from tests/oracle with /usr/bin/python3 (see README.md).
"""
import copy

import torch

from fixture_io import generator, save
from margins import FORWARD, GRADIENT, Replays, draw_case
from sml_models import SpikingResNet, init_random, init_seeded, sml_loss

CLASSES = 10
BATCH = 4
SIZE = 16
POSITIONS = (3, 3)
# The tiny networks keep 1e-5 (about 4x the largest float32 drift of a perturbed replay, ~2.5e-6); the
# full-width one has 25 times as many potentials, where 1e-6 is what a search of 40 draws reaches.
TINY_MARGIN = 1e-5
FULL_MARGIN = 1e-6
# Linear layers feeding a training-mode BN: the exact bias gradient is zero, the tests check its norm only.
ZERO_GRADIENT_SUFFIX = "prediction.2.bias"


def build(arch, T, width, module_width):
    return SpikingResNet(arch, CLASSES, T, width=width, positions=POSITIONS, module_width=module_width)


def replay_run(model, inputs, recorder, backward=True):
    """One training step as the test checks it, for margins.Replays: everything compared, by fixture key."""
    images, labels = inputs
    model.train()
    model.lif.recorder = recorder
    outputs = model(images)
    if not backward:
        return {}
    loss, hard, soft = sml_loss(outputs, labels)
    loss.backward()
    compared = {"logits": (outputs[0], FORWARD), "loss": (loss, FORWARD), "hard": (hard, FORWARD),
                "soft": (soft, FORWARD)}
    for j, y in enumerate(outputs[1:]):
        compared[f"module_logits.{j}"] = (y, FORWARD)
    for key, p in model.named_parameters():
        if not key.endswith(ZERO_GRADIENT_SUFFIX):
            compared[f"grad.{key}"] = (p.grad, GRADIENT)
    for key, value in model.state_dict().items():
        if "running_" in key:
            compared[f"after.{key}"] = (value, FORWARD)
    return compared


def draw_input(model, g, margin, tries, seed):
    """An input batch whose membrane potentials all keep `margin` from theta and from theta +- r, and whose
    float32 replays with perturbed weights fire the same spikes (margins.draw_case)."""
    def draw(_attempt):
        images = torch.randn(BATCH, 3, SIZE, SIZE, generator=g)
        return images, torch.randint(0, CLASSES, (BATCH,), generator=g)

    (images, labels), _, record = draw_case(Replays(replay_run), model, draw, margin, tries, seed)
    return images, labels, record


def margin_arrays(record):
    return {key: torch.tensor(value, dtype=torch.int64 if isinstance(value, int) else torch.float64)
            for key, value in record.items()}


def train_step(model, images, labels, probe=None):
    """Forward in training mode and backward of the SML loss, in float64, on a copy of `model`."""
    run = copy.deepcopy(model).double().train()
    outputs = run(images.double(), probe)
    loss, hard, soft = sml_loss(outputs, labels)
    loss.backward()
    return run, outputs, loss, hard, soft


def tiny(arch, seed):
    """Width 4 (stages 4..32 or 8..32 channels) and module width 8: module 0 maps C = k directly, module 1
    first reduces C = 16 > k with the 1x1 conv."""
    g = generator(seed)
    weights = build(arch, 1, 4, 8)
    init_random(weights, g)
    state = weights.state_dict()
    save(f"sml_{arch}_weights", state)
    for T in (1, 2):
        model = build(arch, T, 4, 8)
        model.load_state_dict(state)
        images, labels, record = draw_input(model, g, TINY_MARGIN, 400, seed + T)
        probe = {} if arch == "resnet18" else None
        run, outputs, loss, hard, soft = train_step(model, images, labels, probe)
        arrays = {
            "input": images, "labels": labels, "logits": outputs[0], "loss": loss, "hard": hard, "soft": soft,
            **margin_arrays(record),
        }
        for j, y in enumerate(outputs[1:]):
            arrays[f"module_logits.{j}"] = y
        for key, p in run.named_parameters():
            arrays[f"grad.{key}"] = p.grad
        for key, value in run.state_dict().items():
            if "running_" in key or key.endswith("num_batches_tracked"):
                arrays[f"after.{key}"] = value
        if probe is not None:
            snn_norm, module_norm, cosine, total_norm = [], [], [], []
            for j in sorted(probe):
                block_output, snn, module_input = probe[j]
                g_snn, g_module = snn.grad.reshape(-1), module_input.grad.reshape(-1)
                snn_norm.append(g_snn.norm())
                module_norm.append(g_module.norm())
                cosine.append(torch.dot(g_snn, g_module) / (g_snn.norm() * g_module.norm()))
                total_norm.append(block_output.grad.norm())
            arrays.update({
                "probe.units": torch.tensor([u + 1 for u in model.attach]), "probe.snn_norm": torch.stack(snn_norm),
                "probe.module_norm": torch.stack(module_norm), "probe.cosine": torch.stack(cosine),
                "probe.total_norm": torch.stack(total_norm),
            })
        save(f"sml_{arch}_t{T}", arrays)
        print(f"sml_{arch}_t{T}: loss {loss.item():.6f}, {describe(record)}")


def describe(record):
    return (f"margins {record['margin.threshold']:.2e} / {record['margin.region']:.2e} at draw "
            f"{record['margin.attempt']}; replays: drift {record['margin.replay_drift']:.2e}, ratios "
            f"{record['margin.replay_ratio_forward']:.3f} / {record['margin.replay_ratio_gradient']:.3f}")


SAMPLES = 16
FULL_SEED = 11


def full_width():
    """ResNet-19 at the published width with 2 modules of width 256, T = 2, seeded TS initialisation."""
    model = build("resnet19", 2, 64, 256)
    init_seeded(model, FULL_SEED)
    g = generator(19)
    images, labels, record = draw_input(model, g, FULL_MARGIN, 40, 19)
    run, outputs, loss, hard, soft = train_step(model, images, labels)
    arrays = {
        "seed": torch.tensor(FULL_SEED), "input": images, "labels": labels, "logits": outputs[0], "loss": loss,
        "hard": hard, "soft": soft, **margin_arrays(record),
    }
    for j, y in enumerate(outputs[1:]):
        arrays[f"module_logits.{j}"] = y
    picker = generator(23)
    for key, p in run.named_parameters():
        flat = p.grad.reshape(-1)
        index = torch.randperm(flat.numel(), generator=picker)[:SAMPLES]
        arrays[f"gradnorm.{key}"] = flat.norm()
        arrays[f"sample_index.{key}"] = index
        arrays[f"sample.{key}"] = flat[index]
    save("sml_resnet19_full", arrays)
    print(f"sml_resnet19_full: loss {loss.item():.6f}, {describe(record)}")


tiny("resnet18", 181)
tiny("resnet19", 191)
full_width()
