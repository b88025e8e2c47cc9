"""Python port of src/nn/init.ts: the seeded InitRng and the Kaiming / uniform initialisers, so the oracle
builds the same weights as `new SpikingResNet({seed})` without storing them.

The uint32 stream is bit-identical to the TypeScript one. Normals go through libm's log and cos (V8 has
its own), so a value may differ in the last ulp of the float64 before rounding to float32; that almost
never changes the float32 weight and never matters at test tolerances.

splitmix32 is counter-based (draw i mixes state0 + (i + 1) * 0x9e3779b9), so whole tensors are drawn at
once with numpy uint32 arithmetic, which wraps modulo 2^32 like Math.imul.
"""
import math

import numpy as np

GOLDEN = 0x9E3779B9
MASK = 0xFFFFFFFF


def fnv1a_seed(seed, name):
    """The stream's starting state: FNV-1a over the UTF-8 name, started from 0x811c9dc5 ^ seed."""
    state = 0x811C9DC5 ^ (seed & MASK)
    for byte in name.encode("utf-8"):
        state = ((state ^ byte) * 0x01000193) & MASK
    return state


def _mix(z):
    """The splitmix32 output function on a uint32 array."""
    z = (z ^ (z >> np.uint32(16))) * np.uint32(0x85EBCA6B)
    z = (z ^ (z >> np.uint32(13))) * np.uint32(0xC2B2AE35)
    return z ^ (z >> np.uint32(16))


class InitRng:
    def __init__(self, seed, name=""):
        self.state = fnv1a_seed(seed, name)

    def uint32s(self, count):
        """The next `count` outputs of the stream, as uint32."""
        steps = np.arange(1, count + 1, dtype=np.uint64)
        states = ((np.uint64(self.state) + steps * np.uint64(GOLDEN)) & np.uint64(MASK)).astype(np.uint32)
        self.state = (self.state + count * GOLDEN) & MASK
        with np.errstate(over="ignore"):
            return _mix(states)

    def next_uint32(self):
        return int(self.uint32s(1)[0])

    def uniforms(self, count):
        """Uniform in (0, 1) with 24-bit resolution, float64."""
        return ((self.uint32s(count) >> np.uint32(8)).astype(np.float64) + 0.5) / 16777216.0

    def uniform(self):
        return float(self.uniforms(1)[0])

    def normals(self, count):
        """Box-Muller from consecutive uniform pairs (u1, u2), one normal per pair, like InitRng.normal."""
        u = self.uniforms(2 * count).reshape(count, 2)
        return np.sqrt(-2.0 * np.log(u[:, 0])) * np.cos(2.0 * math.pi * u[:, 1])

    def normal(self):
        return float(self.normals(1)[0])


def kaiming_normal_fan_out(rng, shape):
    """std = sqrt(2 / (cout * kh * kw)); float64 product rounded to float32, as Float32Array.from does."""
    cout = shape[0]
    kh = shape[2] if len(shape) > 2 else 1
    kw = shape[3] if len(shape) > 3 else 1
    std = math.sqrt(2.0 / (cout * kh * kw))
    count = int(np.prod(shape))
    return (rng.normals(count) * std).astype(np.float32).reshape(shape)


def uniform_fan_in(rng, count, fan_in):
    bound = 1.0 / math.sqrt(fan_in)
    return ((2.0 * rng.uniforms(count) - 1.0) * bound).astype(np.float32)
