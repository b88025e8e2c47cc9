"""PyTorch re-implementation of SPEC §2-6, written from the SPEC: the multi-step LIF neuron with the Dspike
surrogate, spiking ResNet-18/34/19, the SML surrogate modules and the SML loss. Module names follow the
reference implementation, so `state_dict()` keys equal ../../../shared/reference/state_dict_keys_*.tsv.

The LIF neuron loops over t in autograd (a Heaviside autograd.Function with the surrogate backward), so
back-propagation through time is PyTorch's own and independent of the TypeScript kernel's recursion.
Time is folded time-major into the batch: (T*B, C, H, W), row t*B + b (SPEC §1).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from init_rng import InitRng, kaiming_normal_fan_out, uniform_fan_in

THRESHOLD = 1.0
TAU = 0.5
GAMMA = 2.5
REGION = 1.0


class DspikeHeaviside(torch.autograd.Function):
    """s = H(z) (1 where z >= 0); backward: gamma (1 - tanh(gamma z)^2) / (2 tanh(gamma r)) on |z| <= r."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return (z >= 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        sg = GAMMA * (1 - torch.tanh(GAMMA * z) ** 2) / (2 * math.tanh(GAMMA * REGION))
        return grad * torch.where(z.abs() <= REGION, sg, torch.zeros_like(sg))


class MembraneRecorder:
    """Collects every membrane potential u_t the LIF neurons compute, to check distances to the threshold
    and to the edges of the surrogate region (where float rounding could flip a spike or a gradient)."""

    def __init__(self):
        self.potentials = []

    def margins(self):
        """(smallest |u - theta|, smallest ||u - theta| - r|) over every recorded potential."""
        u = torch.cat([p.reshape(-1) for p in self.potentials])
        distance = (u - THRESHOLD).abs()
        return distance.min().item(), (distance - REGION).abs().min().item()


class Lif(nn.Module):
    """Multi-step LIF (SPEC §2) over a time-major (T*B, ...) input; no state_dict entries."""

    def __init__(self):
        super().__init__()
        self.T = 1
        self.recorder = None

    def forward(self, x):
        T = self.T
        steps = x.reshape(T, x.shape[0] // T, *x.shape[1:])
        membrane = torch.zeros_like(steps[0])
        spikes = []
        for t in range(T):
            u = TAU * membrane + steps[t]
            if self.recorder is not None:
                self.recorder.potentials.append(u.detach())
            s = DspikeHeaviside.apply(u - THRESHOLD)
            membrane = u * (1 - s)  # hard reset, not detached
            spikes.append(s)
        return torch.cat(spikes, 0)


def conv(cin, cout, kernel, stride, padding):
    return nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, lif):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv(cin, cout, 1, stride, 0), nn.BatchNorm2d(cout))
        self.lif = lif

    def forward(self, x):
        h = self.lif(self.bn1(self.conv1(x)))
        main = self.bn2(self.conv2(h))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return self.lif(main + shortcut)


MODULE_CONV = {7: (2, 3), 5: (2, 2), 3: (1, 1), 1: (1, 0)}  # kernel -> (stride, padding)


class SurrogateModule(nn.Module):
    """SPEC §5: firing rates -> [1x1 C->k if C > k] + conv/BN/LeakyReLU per kernel -> prediction head."""

    def __init__(self, cin, num_classes, width=256, kernels=(7, 5, 3), local=False):
        super().__init__()
        for k in kernels:
            if k not in MODULE_CONV:
                raise ValueError(f"kernel {k} is not one of 7, 5, 3, 1")
        self.local = local
        plan = []
        channels = cin
        if channels > width:
            plan.append((channels, 1))
            channels = width
        for k in kernels:
            plan.append((channels, k))
            channels = width
        self.convs = nn.ModuleList(
            nn.Sequential(conv(c, width, k, *MODULE_CONV[k]), nn.BatchNorm2d(width), nn.LeakyReLU(0.01))
            for c, k in plan
        )
        self.prediction = nn.Sequential(
            nn.AdaptiveAvgPool2d((2, 2)),
            nn.Flatten(),
            nn.Linear(4 * width, 512),
            nn.BatchNorm1d(512),
            nn.LeakyReLU(0.01),
            nn.Linear(512, num_classes),
        )

    def forward(self, spikes, T):
        if self.local:
            spikes = spikes.detach()
        x = spikes.reshape(T, spikes.shape[0] // T, *spikes.shape[1:]).mean(0)
        for unit in self.convs:
            x = unit(x)
        return self.prediction(x)


STAGES = {
    "resnet18": [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)],
    "resnet34": [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)],
    "resnet19": [(128, 3, 1), (256, 3, 2), (512, 2, 2)],
}


class SpikingResNet(nn.Module):
    """Spiking ResNet-18/34/19 of SPEC §4, `width` the stem width (stages scale with it), plus surrogate
    modules after blocks at incremental `positions` (SPEC §5)."""

    def __init__(self, arch, num_classes, T, width=64, in_channels=3, imagenet_stem=None, positions=(),
                 module_width=256, kernels=(7, 5, 3), local=False):
        super().__init__()
        self.arch = arch
        imagenet = num_classes > 200 if imagenet_stem is None else imagenet_stem
        self.lif = Lif()
        self.lif.T = T
        self.conv1 = conv(in_channels, width, 7, 2, 3) if imagenet else conv(in_channels, width, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(width)
        blocks = []
        channels = width
        for s, (stage_channels, count, stride) in enumerate(STAGES[arch]):
            out = stage_channels * width // 64
            layer = []
            for i in range(count):
                first_stride = 2 if (s == 0 and imagenet) else stride
                layer.append(BasicBlock(channels, out, first_stride if i == 0 else 1, self.lif))
                channels = out
            setattr(self, f"layer{s + 1}", nn.ModuleList(layer))
            blocks.extend(layer)
        self.blocks = blocks  # a plain list: the blocks are registered under layer{s}
        if arch == "resnet19":
            self.linear = nn.Linear(channels, channels // 2)
            self.linear2 = nn.Linear(channels // 2, num_classes)
        else:
            self.linear = nn.Linear(channels, num_classes)
        self.attach = []
        modules = []
        unit = 0
        for step in positions:
            unit += step
            if unit > len(blocks):
                raise ValueError(f"positions {positions} reach block {unit}, past the last ({len(blocks)})")
            cin = blocks[unit - 1].conv2.out_channels
            modules.append(SurrogateModule(cin, num_classes, module_width, kernels, local))
            self.attach.append(unit - 1)
        if modules:
            self.sb_layers = nn.ModuleList(modules)

    @property
    def T(self):
        return self.lif.T

    def forward(self, images, probe=None):
        """images (B, C, H, W), repeated over T. Returns [snn_logits, module logits...]. With `probe` (a
        dict), each attachment point's block output is split into an SNN-path and a module-path copy whose
        gradients are retained: probe[j] = (block_output, snn_copy, module_copy)."""
        T = self.T
        x = images.repeat(T, 1, 1, 1)
        x = self.lif(self.bn1(self.conv1(x)))
        module_logits = []
        for u, block in enumerate(self.blocks):
            x = block(x)
            if u in self.attach:
                j = self.attach.index(u)
                module_input = x
                if probe is not None:
                    x.retain_grad()
                    module_input = x.clone()
                    snn = x.clone()
                    module_input.retain_grad()
                    snn.retain_grad()
                    probe[j] = (x, snn, module_input)
                    x = snn
                module_logits.append(self.sb_layers[j](module_input, T))
        h = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        h = self.linear(h)
        if self.arch == "resnet19":
            h = self.linear2(self.lif(h))
        logits = h.reshape(T, h.shape[0] // T, -1).mean(0)
        return [logits] + module_logits


def kl_d(a, b, tau):
    """KLd(a, b) = (1/B) sum_b sum_k p_k (log p_k - log softmax(a/tau)_k), p = softmax(stopgrad(b)/tau)."""
    log_p = F.log_softmax(b.detach() / tau, dim=1)
    return (log_p.exp() * (log_p - F.log_softmax(a / tau, dim=1))).sum() / a.shape[0]


def sml_loss(outputs, labels, temperature=3.0, alpha=0.5, lam=0.9):
    """SPEC §6. Returns (loss, hard, soft); soft is None without modules."""
    y0, modules = outputs[0], outputs[1:]
    n = len(modules)
    if n == 0:
        ce = F.cross_entropy(y0, labels)
        return ce, ce, None
    hard = (F.cross_entropy(y0, labels) + alpha * sum(F.cross_entropy(y, labels) for y in modules)) / (n * alpha + 1)
    soft = sum(kl_d(y, y0, temperature) + kl_d(y0, y, temperature) for y in modules) / (2 * n + 1e-8)
    return lam * soft + (1 - lam) * hard, hard, soft


def init_seeded(model, seed):
    """The TypeScript initialisation (src/nn/*.ts, src/models/*.ts): each conv weight from
    InitRng(seed, "<key>"), each Linear from one InitRng(seed, "<module name>") drawing weight then bias,
    BN weight 1 and bias 0, running stats 0 / 1, counters 0."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d):
                weight = kaiming_normal_fan_out(InitRng(seed, f"{name}.weight"), list(module.weight.shape))
                module.weight.copy_(torch.from_numpy(weight))
            elif isinstance(module, nn.Linear):
                rng = InitRng(seed, name)
                out_features, in_features = module.weight.shape
                weight = uniform_fan_in(rng, out_features * in_features, in_features)
                bias = uniform_fan_in(rng, out_features, in_features)
                module.weight.copy_(torch.from_numpy(weight.reshape(out_features, in_features)))
                module.bias.copy_(torch.from_numpy(bias))
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()


def init_random(model, generator):
    """Weights for a tiny fixture network, drawn from a torch generator (independent of the TS init):
    convs at twice the Kaiming std so narrow layers still spike, BN affine and running stats perturbed
    from their defaults, nonzero batch counters; Linear as PyTorch's default."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                cout, _, kh, kw = module.weight.shape
                std = 2 * math.sqrt(2.0 / (cout * kh * kw))
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
            elif isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.weight.shape[1])
                module.weight.copy_((torch.rand(module.weight.shape, generator=generator) * 2 - 1) * bound)
                module.bias.copy_((torch.rand(module.bias.shape, generator=generator) * 2 - 1) * bound)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                c = module.weight.shape[0]
                module.weight.copy_(1 + 0.2 * torch.randn(c, generator=generator))
                module.bias.copy_(0.2 * torch.randn(c, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                module.num_batches_tracked.fill_(int(torch.randint(1, 50, (1,), generator=generator)))
