"""PyTorch side of bench/compare/step.ts: the same training step (forward, SML loss, backward, AdamW) on the
oracle models of tests/oracle/sml_models.py, timed after warm-up. Takes one JSON argument (the
configuration step.ts sends) and prints one JSON line with the median step time and the peak memory.

Memory, over one extra step after the timed ones: on CUDA, torch.cuda.max_memory_allocated() after
reset_peak_memory_stats() (bytes held by live tensors, as our pool's peakBytesInUse). On the CPU torch has
no allocator statistics and tracemalloc does not see its allocations, so the figure is the resident-set
high-water mark (VmHWM, reset through /proc/self/clear_refs) minus the resident set before the step, with
glibc told to mmap every block over 64 KiB (so freed tensors leave the resident set), plus the bytes of
the parameters and optimizer state, which the step does not allocate. It over-counts allocator slack and
page rounding; the timed steps run before the threshold changes.
"""
import ctypes
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "oracle"))
from sml_models import Lif, SpikingResNet, sml_loss  # noqa: E402


def status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"torch_step: /proc/self/status has no {field}")


def reset_resident_peak():
    """Sets VmHWM back to the current resident set (Linux: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def map_large_allocations():
    """glibc keeps freed blocks below its (growing) mmap threshold in the heap, so the resident set would
    hide a step's temporaries; a fixed 64 KiB threshold returns every tensor's pages on free."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.mallopt(-3, 64 * 1024) == 1  # M_MMAP_THRESHOLD
    except OSError:
        return False


def persistent_bytes(optimizer):
    """Parameters and optimizer state: live before and after a step, as in our pool's figure."""
    total = 0
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            total += parameter.numel() * parameter.element_size()
            for value in optimizer.state.get(parameter, {}).values():
                if torch.is_tensor(value):
                    total += value.numel() * value.element_size()
    return total


def peak_memory(device, step, optimizer):
    """(bytes, how measured) of one extra, untimed step."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        return (torch.cuda.max_memory_allocated(),
                "torch.cuda.max_memory_allocated (live tensors, parameters and optimizer state included)")
    # torch has no CPU allocator statistics here and tracemalloc does not see its allocations.
    method = "resident-set high-water mark (VmHWM) minus resident set before one untimed step"
    method += ", malloc mmap threshold 64 KiB" if map_large_allocations() else ", glibc heap reuse not controlled"
    step()  # one step under the new threshold, so the heap is in its steady state
    resettable = reset_resident_peak()
    before = status_kib("VmRSS")
    step()
    growth = (status_kib("VmHWM") - before) * 1024
    if not resettable:
        method += "; clear_refs refused, so the high-water mark is the process's"
    return growth + persistent_bytes(optimizer), method + ", plus parameter and optimizer-state bytes"


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
