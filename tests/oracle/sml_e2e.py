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
(|u - theta| = r) switches a surrogate term on or off. The oracle records every potential and re-draws
the input until none lies within MARGIN of either (float32 deviates from float64 by at most ~6e-6 in
these networks, typically far less). Run from tests/oracle with /usr/bin/python3.
"""
import copy

import torch

from fixture_io import generator, save
from sml_models import MembraneRecorder, SpikingResNet, init_random, init_seeded, sml_loss

CLASSES = 10
BATCH = 4
SIZE = 16
POSITIONS = (3, 3)


def build(arch, T, width, module_width):
    return SpikingResNet(arch, CLASSES, T, width=width, positions=POSITIONS, module_width=module_width)


def draw_input(model, g, margin, tries):
    """An input batch whose membrane potentials all keep `margin` from theta and from theta +- r."""
    for attempt in range(tries):
        images = torch.randn(BATCH, 3, SIZE, SIZE, generator=g)
        labels = torch.randint(0, CLASSES, (BATCH,), generator=g)
        probe_model = copy.deepcopy(model).double()
        recorder = MembraneRecorder()
        probe_model.lif.recorder = recorder
        with torch.no_grad():
            probe_model(images.double())
        threshold_margin, region_margin = recorder.margins()
        if min(threshold_margin, region_margin) >= margin:
            return images, labels, threshold_margin, region_margin, attempt + 1
    raise RuntimeError(f"no input within {tries} draws keeps a {margin} margin")


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
        images, labels, threshold_margin, region_margin, draws = draw_input(model, g, 1e-5, 400)
        probe = {} if arch == "resnet18" else None
        run, outputs, loss, hard, soft = train_step(model, images, labels, probe)
        arrays = {
            "input": images, "labels": labels, "logits": outputs[0], "loss": loss, "hard": hard, "soft": soft,
            "margin_threshold": torch.tensor(threshold_margin), "margin_region": torch.tensor(region_margin),
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
        print(f"sml_{arch}_t{T}: loss {loss.item():.6f}, margins {threshold_margin:.2e} / {region_margin:.2e} "
              f"after {draws} draws")


SAMPLES = 16
FULL_SEED = 11


def full_width():
    """ResNet-19 at the published width with 2 modules of width 256, T = 2, seeded TS initialisation."""
    model = build("resnet19", 2, 64, 256)
    init_seeded(model, FULL_SEED)
    g = generator(19)
    images, labels, threshold_margin, region_margin, draws = draw_input(model, g, 1e-6, 40)
    run, outputs, loss, hard, soft = train_step(model, images, labels)
    arrays = {
        "seed": torch.tensor(FULL_SEED), "input": images, "labels": labels, "logits": outputs[0], "loss": loss,
        "hard": hard, "soft": soft,
        "margin_threshold": torch.tensor(threshold_margin), "margin_region": torch.tensor(region_margin),
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
    print(f"sml_resnet19_full: loss {loss.item():.6f}, margins {threshold_margin:.2e} / {region_margin:.2e} "
          f"after {draws} draws")


tiny("resnet18", 181)
tiny("resnet19", 191)
full_width()
