"""Oracle for src/data/augment/ and rng.ts: what torchvision computes on PIL images, written with PIL
itself (torchvision is not installed, so its few lines of glue are restated here: the inverse affine
matrix, AutoAugment's magnitude bins, resize / center-crop sizing). Writes tests/fixtures/data/augment.safetensors.

Images are stored as int32 HWC arrays (fixture_io has no uint8)."""
import math
import os

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from fixture_io import FIXTURES, save

os.makedirs(os.path.join(FIXTURES, "data"), exist_ok=True)
rng = np.random.default_rng(7)

# A non-square RGB image with structure and a narrowed range, so autocontrast/equalize have work to do.
H, W = 20, 24
yy, xx = np.mgrid[0:H, 0:W]
base = np.stack([40 + 6 * xx, 60 + 7 * yy, 90 + 3 * (xx + yy)], -1) + rng.integers(-20, 21, (H, W, 3))
image = np.clip(base, 25, 230).astype(np.uint8)
pil = Image.fromarray(image, "RGB")


def as_i32(img):
    return torch.from_numpy(np.asarray(img).astype(np.int32).copy())


def inverse_affine(center, angle, translate, scale, shear):
    """torchvision.transforms.functional._get_inverse_affine_matrix."""
    rot = math.radians(angle)
    sx = math.radians(shear[0])
    sy = math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    matrix = [d, -b, 0.0, -c, a, 0.0]
    matrix = [x / scale for x in matrix]
    matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty)
    matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty)
    matrix[2] += cx
    matrix[5] += cy
    return matrix


def affine(img, matrix):
    return img.transform(img.size, Image.AFFINE, matrix, Image.NEAREST, fillcolor=(0, 0, 0))


def apply_op(img, op, magnitude):
    """torchvision.transforms.autoaugment._apply_op for PIL images."""
    w, h = img.size
    if op == "ShearX":
        return affine(img, inverse_affine([0, 0], 0.0, [0, 0], 1.0, [math.degrees(math.atan(magnitude)), 0.0]))
    if op == "ShearY":
        return affine(img, inverse_affine([0, 0], 0.0, [0, 0], 1.0, [0.0, math.degrees(math.atan(magnitude))]))
    if op == "TranslateX":
        return affine(img, inverse_affine([w * 0.5, h * 0.5], 0.0, [int(magnitude), 0], 1.0, [0.0, 0.0]))
    if op == "TranslateY":
        return affine(img, inverse_affine([w * 0.5, h * 0.5], 0.0, [0, int(magnitude)], 1.0, [0.0, 0.0]))
    if op == "Rotate":
        return img.rotate(magnitude, Image.NEAREST, expand=False, center=None, fillcolor=(0, 0, 0))
    if op == "Brightness":
        return ImageEnhance.Brightness(img).enhance(1.0 + magnitude)
    if op == "Color":
        return ImageEnhance.Color(img).enhance(1.0 + magnitude)
    if op == "Contrast":
        return ImageEnhance.Contrast(img).enhance(1.0 + magnitude)
    if op == "Sharpness":
        return ImageEnhance.Sharpness(img).enhance(1.0 + magnitude)
    if op == "Posterize":
        return ImageOps.posterize(img, int(magnitude))
    if op == "Solarize":
        return ImageOps.solarize(img, magnitude)
    if op == "AutoContrast":
        return ImageOps.autocontrast(img)
    if op == "Equalize":
        return ImageOps.equalize(img)
    if op == "Invert":
        return ImageOps.invert(img)
    raise ValueError(op)


def augmentation_space(num_bins, image_size):
    """torchvision AutoAugment._augmentation_space; image_size is [height, width]."""
    return {
        "ShearX": (torch.linspace(0.0, 0.3, num_bins), True),
        "ShearY": (torch.linspace(0.0, 0.3, num_bins), True),
        "TranslateX": (torch.linspace(0.0, 150.0 / 331.0 * image_size[1], num_bins), True),
        "TranslateY": (torch.linspace(0.0, 150.0 / 331.0 * image_size[0], num_bins), True),
        "Rotate": (torch.linspace(0.0, 30.0, num_bins), True),
        "Brightness": (torch.linspace(0.0, 0.9, num_bins), True),
        "Color": (torch.linspace(0.0, 0.9, num_bins), True),
        "Contrast": (torch.linspace(0.0, 0.9, num_bins), True),
        "Sharpness": (torch.linspace(0.0, 0.9, num_bins), True),
        "Posterize": (8 - (torch.arange(num_bins) / ((num_bins - 1) / 4)).round().int(), False),
        "Solarize": (torch.linspace(255.0, 0.0, num_bins), False),
        "AutoContrast": (torch.tensor(0.0), False),
        "Equalize": (torch.tensor(0.0), False),
        "Invert": (torch.tensor(0.0), False),
    }


tensors = {"image": as_i32(pil)}
space = augmentation_space(10, [H, W])
# (op, bin, negative sign) cases: every op, both signs for the signed ones, a few bins.
cases = []
for op in ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"]:
    cases += [(op, 3, False), (op, 9, True)]
cases += [("Rotate", 6, False), ("Sharpness", 9, False), ("Brightness", 9, False)]
cases += [("Posterize", 7, False), ("Posterize", 9, False), ("Solarize", 2, False), ("Solarize", 5, False)]
cases += [("AutoContrast", None, False), ("Equalize", None, False), ("Invert", None, False)]
for op, bin_, negative in cases:
    magnitudes, signed = space[op]
    magnitude = float(magnitudes[bin_].item()) if bin_ is not None else 0.0
    if signed and negative:
        magnitude *= -1.0
    tensors[f"op_{op}_{bin_}_{'neg' if negative else 'pos'}"] = as_i32(apply_op(pil, op, magnitude))
    tensors[f"mag_{op}_{bin_}_{'neg' if negative else 'pos'}"] = torch.tensor([magnitude], dtype=torch.float32)

# Magnitude bins as torch computes them (float32 linspace), for the 32x32 CIFAR size too.
for name, (start, end) in {"shear": (0.0, 0.3), "rotate": (0.0, 30.0), "enhance": (0.0, 0.9), "solarize": (255.0, 0.0),
                           "translate32": (0.0, 150.0 / 331.0 * 32)}.items():
    tensors[f"linspace_{name}"] = torch.linspace(start, end, 10)

# Resizing: PIL bilinear (antialiased) as torchvision's F.resize / resized_crop / center_crop use it.
src_h, src_w = 29, 37
big = Image.fromarray(rng.integers(0, 256, (src_h, src_w, 3), dtype=np.uint8), "RGB")
tensors["resize_src"] = as_i32(big)
for w, h in [(16, 12), (50, 41), (40, 20), (37, 11), (9, 29)]:
    tensors[f"resize_{w}x{h}"] = as_i32(big.resize((w, h), Image.BILINEAR))
# resized_crop(top=3, left=5, height=17, width=23) to 13x13.
tensors["resized_crop"] = as_i32(big.crop((5, 3, 5 + 23, 3 + 17)).resize((13, 13), Image.BILINEAR))


def resize_shorter(img, size):
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return img.resize((new_w, new_h), Image.BILINEAR)


def center_crop(img, size):
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


# The evaluation transform at small scale: shorter side 20, center crop 15 (odd margins exercise rounding).
tensors["val_transform"] = as_i32(center_crop(resize_shorter(big, 20), 15))

# ToTensor + Normalize in float32.
mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
std = torch.tensor([0.2023, 0.1994, 0.2010]).view(3, 1, 1)
tensors["normalized"] = (torch.from_numpy(image).permute(2, 0, 1).float().div(255) - mean) / std


def xoshiro128ss(state, count):
    """Reference xoshiro128** (Blackman & Vigna), 32-bit words."""
    s = list(state)
    mask = 0xFFFFFFFF
    rotl = lambda x, k: ((x << k) | (x >> (32 - k))) & mask
    out = []
    for _ in range(count):
        out.append(rotl((s[1] * 5) & mask, 7) * 9 & mask)
        t = (s[1] << 9) & mask
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
    return out


# Stored as int64 (the values are uint32).
tensors["xoshiro_1234"] = torch.tensor(xoshiro128ss([1, 2, 3, 4], 8), dtype=torch.int64)
tensors["xoshiro_big"] = torch.tensor(xoshiro128ss([0xDEADBEEF, 0x12345678, 0xFFFFFFFF, 0x80000000], 8), dtype=torch.int64)

save("data/augment", tensors)
print(f"wrote {len(tensors)} arrays")
