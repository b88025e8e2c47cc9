r"""NIR oracle: loads spikegpu's NIR exports with the reference `nir` package and runs them in snnTorch.

For each tests/fixtures/nir_<name>.nir written by tests/oracle/nir_models.ts, this script
  1. reads the file with `nir.read` (type checking on: every edge's shapes must agree),
  2. imports it with snnTorch's `import_from_nir` (which builds the graph with NIRTorch),
  3. runs candidate inputs for T steps (a static image fed at every step, one sample at a time in NIR's
     unbatched layout), recording every LIF layer's membrane before firing,
  4. keeps the inputs whose membranes stay farthest from the threshold (a spike decided by float rounding
     is no evidence either way), and writes tests/fixtures/nir_<name>_snntorch.json: the inputs, the
     logits averaged over T, the spike trains of the first two LIF layers, the margins and the commits.

snnTorch reproduces our neuron exactly: Leaky(reset_mechanism="zero", reset_delay=False), which its NIR
import builds, computes u = beta * m + x, spike = u > threshold, m = u * (1 - spike) in the same step, with
beta = 1 - dt / tau = our decay for its dt = 1e-4 (docs/nir.md). Norse's from_nir cannot: it ignores r (so
the input is scaled by dt / tau), and at 065a3b45 its spike function needs torch 2.

Python packages come from source trees (the Python package index is not needed): set
  NIR_SRC       a tree of github.com/neuromorphs/NIR        (holds nir/)
  NIRTORCH_SRC  a tree of github.com/neuromorphs/NIRTorch   (holds nirtorch/)
  SNNTORCH_SRC  a tree of github.com/jeshraghian/snntorch   (holds snntorch/)
each with an optional COMMIT file holding its commit, which the fixtures record. To make them from clones
(`<owner>+<name>.git` below stands for each repository's git directory):

  for spec in neuromorphs+NIR:nir neuromorphs+NIRTorch:nirtorch jeshraghian+snntorch:snntorch; do
    repo=${spec%%:*}; mkdir -p /work/ext/$repo
    git --git-dir=$repo.git archive HEAD ${spec##*:} | tar -x -C /work/ext/$repo
    git --git-dir=$repo.git rev-parse HEAD > /work/ext/$repo/COMMIT
  done

Then, from the repository root, with Debian's python3 (python3-torch, python3-numpy, python3-h5py), one
command regenerates every NIR fixture (checkpoints, .nir files, snnTorch results):

  deno run -A tests/oracle/nir_models.ts && NIR_SRC=/work/ext/neuromorphs+NIR \
    NIRTORCH_SRC=/work/ext/neuromorphs+NIRTorch SNNTORCH_SRC=/work/ext/jeshraghian+snntorch \
    /usr/bin/python3 tests/oracle/nir_oracle.py
"""

import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CASES = ["resnet18", "resnet19", "plain"]
CANDIDATES = 24
KEEP = 2
# A membrane closer than this to the threshold may fire in one implementation and not the other.
NEAR = 1e-5


def sources():
    found = {}
    for var, package in (("NIR_SRC", "nir"), ("NIRTORCH_SRC", "nirtorch"), ("SNNTORCH_SRC", "snntorch")):
        path = os.environ.get(var)
        if not path or not (pathlib.Path(path) / package).is_dir():
            sys.exit(
                f"nir_oracle: set {var} to a source tree holding {package}/ (see this file's docstring); "
                f"got {path!r}"
            )
        sys.path.insert(0, path)
        commit_file = pathlib.Path(path) / "COMMIT"
        found[package] = commit_file.read_text().strip() if commit_file.exists() else "unknown"
    return found


COMMITS = sources()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import nir  # noqa: E402

if not hasattr(nir, "version"):
    # Set by the package build (importlib metadata), absent in a source tree.
    nir.version = "1.0.7"

import snntorch  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402


def leaky_layers(net, graph):
    """(node name, module) of every LIF node, in the graph's topological order."""
    order = [a for a, _ in graph.edges]
    names = [n for n in dict.fromkeys(order) if isinstance(graph.nodes[n], nir.LIF)]
    modules = dict(net.named_modules())
    return [(n, modules[n.replace(".", "_")]) for n in names]


def record_membranes(layers):
    """Wraps each Leaky's state function (which returns u, the membrane before firing) to record u."""
    traces = {}
    for name, module in layers:
        traces[name] = []
        original = module.state_function

        def wrapped(input_, original=original, trace=traces[name]):
            u = original(input_)
            trace.append(u.detach().clone())
            return u

        module.state_function = wrapped
    return traces


def run(net, layers, traces, image, T):
    for _, module in layers:
        module.mem = torch.zeros(0)  # a new sequence: Leaky re-initialises the state to zeros
    for trace in traces.values():
        trace.clear()
    spikes = {name: [] for name, _ in layers}
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: spikes[name].append(out.detach().clone()))
        for name, module in layers
    ]
    outputs = []
    with torch.no_grad():
        for _ in range(T):
            out = net(torch.from_numpy(image))
            outputs.append(out[0] if isinstance(out, tuple) else out)
    for hook in hooks:
        hook.remove()
    logits = torch.stack(outputs).mean(0)
    return logits, {n: torch.stack(s) for n, s in spikes.items()}, {n: torch.stack(t) for n, t in traces.items()}


def bits(tensor):
    return "".join("1" if v else "0" for v in tensor.flatten().tolist())


def oracle(name):
    path = FIXTURES / f"nir_{name}.nir"
    graph = nir.read(str(path))
    T = int(graph.metadata["T"])
    threshold = {}
    for node_name, node in graph.nodes.items():
        if isinstance(node, nir.LIF):
            threshold[node_name] = float(np.unique(node.v_threshold)[0])
    input_shape = [int(d) for d in graph.nodes["input"].input_type["input"]]
    net = import_from_nir(graph)
    layers = leaky_layers(net, graph)
    traces = record_membranes(layers)
    rng = np.random.default_rng(2024)
    candidates = []
    for _ in range(CANDIDATES):
        image = (rng.random(input_shape, dtype=np.float32) * 4 - 1).astype(np.float32)
        logits, spikes, membranes = run(net, layers, traces, image, T)
        margins = {n: float((membranes[n] - threshold[n]).abs().min()) for n in membranes}
        candidates.append((min(margins.values()), image, logits, spikes, membranes, margins))
    candidates.sort(key=lambda c: -c[0])
    kept = candidates[:KEEP]
    first = [n for n, _ in layers[:2]]
    near = sum(int(((c[4][n] - threshold[n]).abs() < NEAR).sum()) for c in kept for n in c[4])
    rates = {n: float(np.mean([c[3][n].float().mean().item() for c in kept])) for n, _ in layers}
    result = {
        "about": "tests/oracle/nir_oracle.py: snnTorch running spikegpu's NIR export; regenerate as it says",
        "consumer": "snntorch.import_nir.import_from_nir (NIRTorch nir_to_torch), Leaky reset to zero, no delay",
        "commits": COMMITS,
        "nir_file_version": nir.serialization.read_version(str(path)),
        "torch": torch.__version__,
        "model": name,
        "T": T,
        "input_shape": input_shape,
        "inputs": [c[1].flatten().tolist() for c in kept],
        "logits": [c[2].tolist() for c in kept],
        "layers": [
            {
                "node": n,
                "shape": list(kept[0][3][n].shape[1:]),
                # Per kept input: T steps of the layer's spikes, row-major, as 0/1 characters.
                "spikes": [bits(c[3][n]) for c in kept],
            }
            for n in first
        ],
        "min_margin": min(c[0] for c in kept),
        "min_margin_per_layer": {n: min(c[5][n] for c in kept) for n, _ in layers},
        "near_threshold": near,
        "near_threshold_distance": NEAR,
        "firing_rates": rates,
        "candidates": CANDIDATES,
        "candidate_margins": sorted(float(c[0]) for c in candidates),
    }
    out = FIXTURES / f"nir_{name}_snntorch.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{name}: T={T}, min margin {result['min_margin']:.3g} over {len(layers)} LIF layers, "
        f"{near} membranes within {NEAR} of the threshold, rates "
        + ", ".join(f"{r:.2f}" for r in rates.values())
        + f" -> {out.name}"
    )


if __name__ == "__main__":
    print(f"nir_oracle: snntorch {getattr(snntorch, '__version__', '?')}, commits {COMMITS}")
    for case in sys.argv[1:] or CASES:
        oracle(case)
