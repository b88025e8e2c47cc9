"""PyTorch side of bench/compare/step.ts: the same training step (forward, SML loss, backward, AdamW) on the
oracle models of tests/oracle/sml_models.py, timed after warm-up. Takes one JSON argument (the
configuration step.ts sends) and prints one JSON line with the median step time and the peak memory.

Memory, over one extra step after the timed ones, is the high-water mark of bytes held by live tensors
(parameters, optimizer state and gradients included), as our pool's peakBytesInUse counts ours. On CUDA:
torch.cuda.max_memory_allocated() after reset_peak_memory_stats(). On the CPU torch keeps no allocator
statistics, so the step runs under torch.profiler with profile_memory=True, whose allocation and free
events, in time order, give the live bytes at every point of the step; added to the bytes live when the
step starts. (The resident set, used before, measured the C library's heap and page reuse instead: it
gave 3-15 MiB for steps whose tensors alone take over 100 MiB.)
"""
import json
import os
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "oracle"))
from sml_models import Lif, SpikingResNet, sml_loss  # noqa: E402


def live_bytes(optimizer):
    """Parameters, their gradients and the optimizer state."""
    total = 0
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            total += parameter.numel() * parameter.element_size()
            if parameter.grad is not None:
                total += parameter.grad.numel() * parameter.grad.element_size()
            for value in optimizer.state.get(parameter, {}).values():
                if torch.is_tensor(value):
                    total += value.numel() * value.element_size()
    return total


def cpu_allocation_peak(step):
    """The highest sum of the CPU allocations (+) and frees (-) recorded during `step`, from its start."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    changes = sorted(
        (event.start_us(), event.nbytes())
        for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    )
    if not changes:
        raise RuntimeError("torch_step: the profiler recorded no CPU allocations")
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return peak


def peak_memory(device, step, optimizer):
    """(bytes, how measured) of one extra, untimed step."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        return (torch.cuda.max_memory_allocated(),
                "torch.cuda.max_memory_allocated (live tensors, parameters and optimizer state included)")
    # The step starts with this; done here, the last step's gradients are not counted as live.
    optimizer.zero_grad(set_to_none=True)
    before = live_bytes(optimizer)
    return (before + cpu_allocation_peak(step),
            "live bytes at the step's start plus the peak of the allocations and frees torch.profiler "
            "recorded during it")


def resnet_step(config, device, generator):
    modules = config["modules"]
    model = SpikingResNet(
        config["arch"], 10, config["T"], width=config["width"], in_channels=config["inChannels"],
        positions=(3, 3) if modules else (), module_width=config["moduleWidth"],
    ).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.02)
    batch, size = config["batch"], config["imageSize"]
    images = torch.rand((batch, config["inChannels"], size, size), generator=generator).to(device)
    labels = torch.randint(0, 10, (batch,), generator=generator).to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _, _ = sml_loss(model(images), labels)
        loss.backward()
        optimizer.step()

    return step, optimizer


def lif_step(config, device, generator):
    T, batch, neurons = config["T"], config["batch"], config["neurons"]
    layer = torch.nn.Linear(neurons, neurons).to(device)
    lif = Lif()
    lif.T = T
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.01, weight_decay=0.02)
    inputs = (torch.rand((T * batch, neurons), generator=generator) * 2).to(device)
    seed = torch.randn((T * batch, neurons), generator=generator).to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        lif(layer(inputs)).backward(seed)
        optimizer.step()

    return step, optimizer


def main():
    config = json.loads(sys.argv[1])
    # Every core by default; step.ts's --torch-threads overrides it (on a loaded machine, OpenMP threads
    # that wait for a descheduled sibling can make two threads many times slower than one).
    torch.set_num_threads(config.get("threads") or os.cpu_count())
    wants_cuda = config.get("device", "auto") != "cpu"
    device = torch.device("cuda" if wants_cuda and torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(config.get("seed", 0))
    torch.manual_seed(config.get("seed", 0))
    build = lif_step if config["kind"] == "lif" else resnet_step
    step, optimizer = build(config, device, generator)

    def synchronized():
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(config["warmup"]):
        synchronized()
    times = []
    for _ in range(config["steps"]):
        start = time.perf_counter()
        synchronized()
        times.append(time.perf_counter() - start)
    peak_bytes, memory_method = peak_memory(device, synchronized, optimizer)
    print(json.dumps({
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "medianSeconds": statistics.median(times),
        "peakBytes": peak_bytes,
        "memoryMethod": memory_method,
    }))


if __name__ == "__main__":
    main()
