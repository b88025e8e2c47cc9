"""Why a deep-SNN fixture holds on any adapter, checked when it is drawn.

A spiking network at initialisation is chaotic: a membrane potential that rounds to the other side of the
threshold flips a spike, and the flip spreads through every later layer. Another adapter sums in another
order, so its float32 potentials differ from ours by a few ulps of the values that made them. A fixture
therefore keeps every float64 potential at least a stated MARGIN away from the threshold (and from the
edges of the surrogate region, where a gradient term switches on or off), and is replayed in float32 with
every stored value (weights, buffers, input) moved by a random -2..2 ulps: the replay must fire exactly
the same spikes and match the float64 outputs and gradients within the tests' tolerances (the same rule
as `compare` in tests/helpers.ts). The fixture records all of it under `margin.*`; the tests check it.
"""
import copy

import torch

from fixture_io import generator
from sml_models import REGION, THRESHOLD, MembraneRecorder

ULPS = 2
REPLAYS = 3
FORWARD = (1e-4, 1e-4)  # rtol, scale floor: tests/helpers.ts FORWARD
GRADIENT = (1e-3, 1e-3)  # tests/helpers.ts GRADIENT


def ratio(actual, expected, tolerance):
    """Worst |a - e| / (rtol |e| + floor * rms(e)) over elements, as tests/helpers.ts `compare`."""
    rtol, floor = tolerance
    a, e = actual.detach().double().reshape(-1), expected.detach().double().reshape(-1)
    scale = floor * e.pow(2).mean().sqrt().item() + 1e-12
    return ((a - e).abs() / (rtol * e.abs() + scale)).max().item()


def perturb_(tensor, g, ulps=ULPS):
    """Moves each float32 element by a random whole number of ulps in [-ulps, ulps], in place."""
    steps = torch.randint(-ulps, ulps + 1, tensor.shape, generator=g)
    up, down = torch.full_like(tensor, float("inf")), torch.full_like(tensor, float("-inf"))
    for k in range(1, ulps + 1):
        tensor.copy_(torch.where(steps >= k, torch.nextafter(tensor, up), tensor))
        tensor.copy_(torch.where(steps <= -k, torch.nextafter(tensor, down), tensor))
    return tensor


def perturbed(model, g):
    """A float32 copy of `model` whose parameters and float buffers are each moved by -2..2 ulps."""
    copy_ = copy.deepcopy(model).float()
    with torch.no_grad():
        for t in list(copy_.parameters()) + [b for b in copy_.buffers() if b.is_floating_point()]:
            perturb_(t, g)
    return copy_


def potentials(recorder):
    return torch.cat([p.reshape(-1).double() for p in recorder.potentials])


def distances(u):
    """(smallest |u - theta|, smallest ||u - theta| - r|) over the potentials `u`."""
    distance = (u - THRESHOLD).abs()
    return distance.min().item(), (distance - REGION).abs().min().item()


class Replays:
    """Float32 replays of one case with perturbed stored values, against its float64 run.

    `run(model, inputs, recorder, backward=True)` runs the case on `model` (in the inputs' dtype) with
    `recorder` attached to its LIF neurons and returns {name: (tensor, tolerance)} of everything the test
    compares (nothing without `backward`, where only the potentials are wanted).
    """

    def __init__(self, run):
        self.run = run

    def check(self, model, inputs, seed):
        """Returns the margin.* record of the case; `ok` says whether it holds (no flip, within tolerance)."""
        recorder = MembraneRecorder()
        expected = self.run(copy.deepcopy(model).double(), [x.double() if x.is_floating_point() else x
                                                            for x in inputs], recorder)
        u64 = potentials(recorder)
        to_threshold, to_region = distances(u64)
        flips, drift, worst_forward, worst_gradient = 0, 0.0, 0.0, 0.0
        g = generator(seed)
        for _ in range(REPLAYS):
            replay_inputs = [perturb_(x.clone().float(), g) if x.is_floating_point() else x for x in inputs]
            recorder = MembraneRecorder()
            actual = self.run(perturbed(model, g), replay_inputs, recorder)
            u32 = potentials(recorder)
            flips += int(((u32 >= THRESHOLD) != (u64 >= THRESHOLD)).sum().item())
            drift = max(drift, (u32 - u64).abs().max().item())
            for name, (value, tolerance) in expected.items():
                r = ratio(actual[name][0], value, tolerance)
                if tolerance is FORWARD:
                    worst_forward = max(worst_forward, r)
                else:
                    worst_gradient = max(worst_gradient, r)
        record = {
            "margin.threshold": to_threshold, "margin.region": to_region, "margin.replay_flips": flips,
            "margin.replay_drift": drift, "margin.replay_ratio_forward": worst_forward,
            "margin.replay_ratio_gradient": worst_gradient,
        }
        return record, expected


def draw_case(replays, model, draw, margin, tries, seed, accept=None):
    """Draws cases (`draw(attempt)` -> inputs) until one keeps `margin`, passes `accept(inputs)` if given,
    and survives its replays.

    Returns (inputs, expected float64 results, margin.* record with `margin.required` and the attempt).
    """
    for attempt in range(tries):
        inputs = draw(attempt)
        recorder = MembraneRecorder()
        probe = copy.deepcopy(model).double()
        with torch.no_grad():
            replays.run(probe, [x.double() if x.is_floating_point() else x for x in inputs], recorder,
                        backward=False)
        if min(distances(potentials(recorder))) < margin or (accept is not None and not accept(inputs)):
            continue
        record, expected = replays.check(model, inputs, seed * 1000 + attempt)
        record["margin.required"] = margin
        record["margin.attempt"] = attempt
        if record["margin.replay_flips"] == 0 and max(record["margin.replay_ratio_forward"],
                                                       record["margin.replay_ratio_gradient"]) <= 1:
            return inputs, expected, record
        print(f"  attempt {attempt}: margins {record['margin.threshold']:.2e} / {record['margin.region']:.2e} "
              f"but the replays flip {record['margin.replay_flips']} spikes, ratios "
              f"{record['margin.replay_ratio_forward']:.2f} / {record['margin.replay_ratio_gradient']:.2f}")
    raise RuntimeError(f"no case within {tries} draws keeps a {margin} margin and survives its replays")
