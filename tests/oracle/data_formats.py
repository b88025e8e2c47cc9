"""Oracle for the file formats of src/data: .npz written by numpy itself, JPEGs written and decoded by
PIL, event samples in the ES-ImageNet and SpikingJelly CIFAR10-DVS layouts with their expected encodings
(the official ES-ImageNet frame encoding in torch; SpikingJelly's integrate_events_by_fixed_frames_number
restated in numpy; torch F.interpolate for the 48x48 resize). Files go under tests/fixtures/data/,
expected arrays to tests/fixtures/data/formats.safetensors."""
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fixture_io import FIXTURES, save

DATA = os.path.join(FIXTURES, "data")
rng = np.random.default_rng(2024)
tensors = {}


def path(*parts):
    p = os.path.join(DATA, *parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


# ---- .npz: every supported dtype, stored and deflated, plus unsupported ones ----------------------
signed = np.arange(-5, 7).reshape(3, 4)
unsigned = np.arange(0, 12).reshape(3, 4) * 7
arrays = {
    "u1": unsigned.astype(np.uint8), "i1": signed.astype(np.int8),
    "u2": (unsigned * 1000).astype(np.uint16), "i2": (signed * 1000).astype(np.int16),
    "u4": (unsigned * 100000).astype(np.uint32), "i4": (signed * 100000).astype(np.int32),
    "u8": (unsigned.astype(np.uint64) * 10**12), "i8": (signed.astype(np.int64) * 10**12),
    "f4": (signed / 4).astype(np.float32), "f8": (signed / 3).astype(np.float64),
    "b1": (signed % 2 == 0),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((0, 3), np.uint8),
    "column": np.arange(5, dtype=np.int16)[:, None],
}
np.savez(path("npz", "dtypes.npz"), **arrays)
np.savez_compressed(path("npz", "dtypes_compressed.npz"), **arrays)
np.savez(path("npz", "bad_complex.npz"), z=np.ones(3, np.complex64))
np.savez(path("npz", "bad_bigendian.npz"), b=np.arange(4, dtype=">i4"))
np.savez(path("npz", "bad_fortran.npz"), f=np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.savez(path("npz", "bad_structured.npz"), s=np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]))

# ---- JPEG: RGB, grayscale, CMYK, as PIL writes and decodes them --------------------------------------
yy, xx = np.mgrid[0:30, 0:40]
rgb = np.stack([128 + 100 * np.sin(xx / 5.0), 128 + 90 * np.cos(yy / 4.0), 60 + 3 * (xx + yy)], -1)
rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
for name, image in {
    "rgb": Image.fromarray(rgb, "RGB"),
    "gray": Image.fromarray(rgb[:21, :33, 0], "L"),
    "cmyk": Image.fromarray(rgb, "RGB").convert("CMYK"),
}.items():
    file = path("jpeg", f"{name}.jpg")
    image.save(file, quality=90)
    decoded = Image.open(file)
    tensors[f"jpeg_{name}"] = torch.from_numpy(np.asarray(decoded.convert("RGB")).astype(np.int32).copy())
    tensors[f"jpeg_{name}_mode_is_{decoded.mode}"] = torch.zeros(1)

# ---- ES-ImageNet event lists and the official encoding ------------------------------------------------
def es_sample(a, b, count):
    def events():
        rows = rng.integers(0, a, count)
        cols = rng.integers(0, b, count)
        ts = rng.integers(1, 9, count)
        return np.stack([rows, cols, ts], 1).astype(np.uint8)
    return events(), events()


def official_encoding(pos, neg, a, b):
    """The ES-ImageNet loader's __getitem__: offsets, binary [2, 8, 256, 256] frames, crop to 224."""
    dy = (254 - b) // 2
    dx = (254 - a) // 2
    frame = torch.zeros([2, 8, 256, 256])
    for channel, events in enumerate([pos, neg]):
        events = torch.from_numpy(events.astype(np.int64))
        x = events[:, 0] + dx
        y = events[:, 1] + dy
        t = events[:, 2] - 1
        frame[channel, t, x, y] = 1
    return frame[:, :, 16:240, 16:240]  # (C, T, H, W)


es_samples = [("train", "class3/class3_1.npz", 3, 200, 254, 600), ("val", "ILSVRC2012_val_00000001.npz", 7, 254, 180, 500)]
for split, relpath, label, a, b, count in es_samples:
    pos, neg = es_sample(a, b, count)
    np.savez_compressed(path("es", split, relpath), pos=pos, neg=neg)
    encoded = official_encoding(pos, neg, a, b).permute(1, 0, 2, 3).contiguous()  # (T, C, H, W)
    tensors[f"es_{split}_nonzero"] = torch.nonzero(encoded.flatten()).flatten().to(torch.int32)
with open(path("es", "trainlabel.txt"), "w") as f:
    f.write("class3/class3_1.npz 3 200 254\n")
with open(path("es", "vallabel.txt"), "w") as f:
    f.write("ILSVRC2012_val_00000001.npz 7 254 180\n")

# ---- CIFAR10-DVS: SpikingJelly's integration by event count, then bilinear resize to 48 -------------
def integrate_by_number(t, x, y, p, frames_num, H, W):
    """spikingjelly.datasets.integrate_events_by_fixed_frames_number(split_by='number')."""
    N = t.size
    di = N // frames_num
    j_l = np.array([i * di for i in range(frames_num)])
    j_r = j_l + di
    j_r[-1] = N
    frames = np.zeros([frames_num, 2, H, W])
    for i in range(frames_num):
        frame = np.zeros(shape=[2, H * W])
        xs = x[j_l[i]:j_r[i]].astype(int)
        ys = y[j_l[i]:j_r[i]].astype(int)
        ps = p[j_l[i]:j_r[i]]
        mask = [ps == 0]
        mask.append(np.logical_not(mask[0]))
        for c in range(2):
            position = ys[mask[c]] * W + xs[mask[c]]
            events_number_per_pos = np.bincount(position)
            frame[c][np.arange(events_number_per_pos.size)] += events_number_per_pos
        frames[i] = frame.reshape((2, H, W))
    return frames


N, T = 2003, 4
# Clustered events so the resize sees multi-count pixels.
x = np.clip(rng.normal(64, 20, N), 0, 127).astype(np.int64)
y = np.clip(rng.normal(50, 25, N), 0, 127).astype(np.int64)
p = rng.integers(0, 2, N).astype(np.int64)
t = np.sort(rng.integers(0, 10**6, N)).astype(np.int64)
np.savez_compressed(path("dvs", "airplane", "sample_0.npz"), t=t, x=x, y=y, p=p)
np.savez(path("dvs", "automobile", "sample_0.npz"), t=t[:50].astype(np.uint32), x=x[:50].astype(np.uint8),
         y=y[:50].astype(np.uint8), p=p[:50].astype(np.uint8))
frames = integrate_by_number(t, x, y, p, T, 128, 128).astype(np.float32)
flat = frames.flatten()
nonzero = np.nonzero(flat)[0]
tensors["dvs_counts_index"] = torch.from_numpy(nonzero.astype(np.int32))
tensors["dvs_counts_value"] = torch.from_numpy(flat[nonzero].astype(np.int32))
resized = F.interpolate(torch.from_numpy(frames), size=[48, 48], mode="bilinear", align_corners=False)
tensors["dvs_frames"] = resized.contiguous()

save("data/formats", tensors)
print(f"wrote {len(tensors)} arrays")
