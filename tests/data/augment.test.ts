/** src/data/augment/ and rng.ts against PIL / torch (tests/oracle/data_augment.py). */
import assert from "node:assert/strict";
import { Fixture } from "../helpers.ts";
import {
  applyAutoAugmentOp,
  autoAugmentCifar10,
  autoAugmentMagnitude,
  type AutoAugmentOp,
  CIFAR10_POLICY,
  torchLinspace,
} from "../../src/data/augment/autoaugment.ts";
import { rollPlanes } from "../../src/data/augment/event_frames.ts";
import { centerCrop, crop, flipHorizontal, randomCropWithPadding } from "../../src/data/augment/geometry.ts";
import { type Image, roundHalfEven } from "../../src/data/augment/image.ts";
import { cutout, normalize } from "../../src/data/augment/normalize.ts";
import {
  randomResizedCropBox,
  resizeBilinear,
  resizedCrop,
  resizeShorterSide,
} from "../../src/data/augment/resize.ts";
import {
  AUGMENT_NAMES,
  augmentFlags,
  type AugmentName,
  augmentNamesExpected,
} from "../../src/data/augment/settings.ts";
import { permutation, Rng } from "../../src/data/rng.ts";

const fixture = await Fixture.load("data/augment");

function imageFrom(key: string): Image {
  const [height, width, channels] = fixture.shape(key);
  return { width, height, channels, data: Uint8Array.from(fixture.ints(key)) };
}

/** Exact comparison of images, reporting the first differing pixels. */
function assertImageEqual(actual: Image, expectedKey: string) {
  const expected = imageFrom(expectedKey);
  assert.deepEqual([actual.height, actual.width, actual.channels], [
    expected.height,
    expected.width,
    expected.channels,
  ], expectedKey);
  const diffs: string[] = [];
  for (let i = 0; i < expected.data.length && diffs.length < 5; i++) {
    if (actual.data[i] !== expected.data[i]) {
      const pixel = Math.floor(i / expected.channels);
      diffs.push(
        `(y ${Math.floor(pixel / expected.width)}, x ${pixel % expected.width}, c ${
          i % expected.channels
        }): ${actual.data[i]} vs ${expected.data[i]}`,
      );
    }
  }
  assert.equal(diffs.length, 0, `${expectedKey} differs from PIL at ${diffs.join("; ")}`);
}

/** An Rng stand-in that replays fixed draws, to steer AutoAugment's choices. */
function scriptedRng(uint32s: number[]): Rng {
  let i = 0;
  return Object.assign(Object.create(Rng.prototype), {
    nextUint32: () => {
      if (i >= uint32s.length) throw new Error("scripted rng ran out of draws");
      return uint32s[i++];
    },
  }) as Rng;
}

Deno.test("xoshiro128** matches the reference sequence", () => {
  for (
    const [key, state] of [["xoshiro_1234", [1, 2, 3, 4]], ["xoshiro_big", [
      0xdeadbeef,
      0x12345678,
      0xffffffff,
      0x80000000,
    ]]] as const
  ) {
    const rng = Rng.fromState(state);
    const actual = Array.from({ length: 8 }, () => rng.nextUint32());
    assert.deepEqual(actual, Array.from(fixture.get(key).data as BigInt64Array, Number), key);
  }
});

Deno.test("rng: state round-trips, seeds separate streams, int() is in range and unbiased enough", () => {
  const rng = Rng.seeded(42, 3, 17);
  rng.nextUint32();
  const saved = rng.state();
  const a = Array.from({ length: 5 }, () => rng.nextUint32());
  const restored = Rng.fromState(saved);
  assert.deepEqual(Array.from({ length: 5 }, () => restored.nextUint32()), a);
  assert.notDeepEqual(Rng.seeded(42, 3, 17).state(), Rng.seeded(42, 3, 18).state());
  assert.deepEqual(Rng.seeded(1, 2).state(), Rng.seeded(1, 2).state());
  const counts = new Array(7).fill(0);
  const r = Rng.seeded(9);
  for (let i = 0; i < 70000; i++) counts[r.int(7)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `int(7) bucket count ${c}`);
  const p = permutation(100, Rng.seeded(5));
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.throws(() => Rng.fromState([0, 0, 0, 0]), /all-zero/);
});

Deno.test("AutoAugment magnitudes equal torch.linspace in float32", () => {
  const tables: Record<string, [number, number]> = {
    shear: [0, 0.3],
    rotate: [0, 30],
    enhance: [0, 0.9],
    solarize: [255, 0],
    translate32: [0, (150 / 331) * 32],
  };
  for (const [name, [start, end]] of Object.entries(tables)) {
    const expected = fixture.floats(`linspace_${name}`);
    for (let i = 0; i < 10; i++) assert.equal(torchLinspace(start, end, 10, i), expected[i], `${name}[${i}]`);
  }
});

Deno.test("AutoAugment ops match PIL pixel for pixel", () => {
  const image = imageFrom("image");
  let checked = 0;
  for (const key of fixture.arrays.keys()) {
    const match = /^op_(\w+?)_(\d+|None)_(pos|neg)$/.exec(key);
    if (!match) continue;
    const op = match[1] as AutoAugmentOp;
    const bin = match[2] === "None" ? null : Number(match[2]);
    let magnitude = 0;
    if (bin !== null) {
      const [value, signed] = autoAugmentMagnitude(op, bin, image.width, image.height);
      magnitude = signed && match[3] === "neg" ? -value : value;
    }
    assert.equal(
      Math.fround(magnitude),
      fixture.floats(key.replace(/^op_/, "mag_"))[0],
      `magnitude of ${key}`,
    );
    assertImageEqual(applyAutoAugmentOp(image, op, magnitude), key);
    checked++;
  }
  assert.ok(checked >= 28, `only ${checked} op cases in the fixture`);
});

Deno.test("AutoAugment CIFAR-10 policy: draws a sub-policy, probabilities and signs as torchvision does", () => {
  assert.equal(CIFAR10_POLICY.length, 25);
  const image = imageFrom("image");
  // Sub-policy 3 = (ShearY 0.5 bin 8, TranslateY 0.7 bin 9): first op applied (u = 0.25 <= 0.5) with a
  // negative sign (coin 0), second skipped (u = 0.75 > 0.7).
  const quarter = 0x40000000;
  const rng = scriptedRng([3, quarter, 3 * quarter, 0, 1]);
  const [shear] = autoAugmentMagnitude("ShearY", 8, image.width, image.height);
  assert.deepEqual(autoAugmentCifar10(image, rng).data, applyAutoAugmentOp(image, "ShearY", -shear).data);
  // Sub-policy 8 = (Equalize 0.6, Equalize 0.5), both applied.
  const both = scriptedRng([8, 0, 0, 1, 1]);
  const equalized = applyAutoAugmentOp(applyAutoAugmentOp(image, "Equalize", 0), "Equalize", 0);
  assert.deepEqual(autoAugmentCifar10(image, both).data, equalized.data);
});

Deno.test("resize matches PIL bilinear (antialiased) for down, up and mixed scales", () => {
  const source = imageFrom("resize_src");
  for (const [w, h] of [[16, 12], [50, 41], [40, 20], [37, 11], [9, 29]]) {
    assertImageEqual(resizeBilinear(source, w, h), `resize_${w}x${h}`);
  }
  assertImageEqual(resizedCrop(source, { top: 3, left: 5, height: 17, width: 23 }, 13), "resized_crop");
  assertImageEqual(centerCrop(resizeShorterSide(source, 20), 15, 15), "val_transform");
});

Deno.test("normalize equals torch ToTensor + Normalize", () => {
  const image = imageFrom("image");
  const actual = normalize(image, [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.201]);
  const expected = fixture.floats("normalized");
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.equal(actual[i], expected[i], `element ${i}`);
});

Deno.test("random crop with padding: offsets cover 0..2p, padding is zero, content is shifted", () => {
  const image: Image = {
    width: 6,
    height: 5,
    channels: 1,
    data: Uint8Array.from({ length: 30 }, (_, i) => i + 1),
  };
  const seen = new Set<string>();
  const rng = Rng.seeded(1);
  for (let k = 0; k < 400; k++) {
    const out = randomCropWithPadding(image, 4, 2, rng);
    assert.equal(out.data.length, 16);
    // Recover the offset from the first non-zero pixel and check the window against crop().
    let found = false;
    for (let top = -2; top <= 3 && !found; top++) {
      for (let left = -2; left <= 4 && !found; left++) {
        if (crop(image, left, top, 4, 4).data.every((v, i) => v === out.data[i])) {
          seen.add(`${top},${left}`);
          found = true;
        }
      }
    }
    assert.ok(found, "crop is not a window of the zero-padded image");
  }
  // height 5 + 4 - 4 + 1 = 6 row offsets, width 6 + 4 - 4 + 1 = 7 column offsets.
  assert.equal(seen.size, 42);
  assert.deepEqual(crop(image, -1, -1, 2, 2).data, Uint8Array.from([0, 0, 0, 1]));
});

Deno.test("flip and Cutout", () => {
  const image: Image = {
    width: 3,
    height: 2,
    channels: 2,
    data: Uint8Array.from({ length: 12 }, (_, i) => i),
  };
  assert.deepEqual(Array.from(flipHorizontal(image).data), [4, 5, 2, 3, 0, 1, 10, 11, 8, 9, 6, 7]);
  // Cutout: the hole is the clipped 16x16 square around a uniform centre, zero on every channel.
  const rng = Rng.seeded(3);
  for (let k = 0; k < 50; k++) {
    const data = new Float32Array(2 * 32 * 32).fill(1);
    const probe = Rng.fromState(rng.state());
    const cy = probe.int(32);
    const cx = probe.int(32);
    cutout(data, 2, 32, 32, 16, rng);
    for (let c = 0; c < 2; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const inside = y >= Math.max(cy - 8, 0) && y < Math.min(cy + 8, 32) && x >= Math.max(cx - 8, 0) &&
            x < Math.min(cx + 8, 32);
          assert.equal(data[(c * 32 + y) * 32 + x], inside ? 0 : 1);
        }
      }
    }
  }
});

Deno.test("RandomResizedCrop box: within bounds, area and ratio in range, fallback = clamped central crop", () => {
  const rng = Rng.seeded(11);
  for (let k = 0; k < 500; k++) {
    const box = randomResizedCropBox(500, 375, rng);
    assert.ok(box.top >= 0 && box.left >= 0 && box.top + box.height <= 375 && box.left + box.width <= 500);
    const area = box.width * box.height / (500 * 375);
    assert.ok(area > 0.07 && area <= 1.0, `area fraction ${area}`);
    assert.ok(
      box.width / box.height > 0.7 && box.width / box.height < 1.4,
      `ratio ${box.width / box.height}`,
    );
  }
  // A 1000x10 strip: no draw with ratio <= 4/3 fits, so all 10 tries fail; fallback w = round(10 * 4/3) = 13.
  assert.deepEqual(randomResizedCropBox(1000, 10, Rng.seeded(2)), {
    top: 0,
    left: 493,
    height: 10,
    width: 13,
  });
  // A 10x1000 strip: fallback h = round(10 / (3/4)) = 13.
  assert.deepEqual(randomResizedCropBox(10, 1000, Rng.seeded(2)), {
    top: 493,
    left: 0,
    height: 13,
    width: 10,
  });
  assert.equal(roundHalfEven(2.5), 2);
  assert.equal(roundHalfEven(3.5), 4);
  assert.equal(roundHalfEven(0.5), 0);
});

Deno.test("rollPlanes equals torch.roll", () => {
  const planes = Float32Array.from({ length: 12 }, (_, i) => i); // (1, 3, 4)
  // torch.roll(arange(12).view(3,4), shifts=(1, -1), dims=(0, 1))
  assert.deepEqual(Array.from(rollPlanes(planes, 1, 3, 4, 1, -1)), [9, 10, 11, 8, 1, 2, 3, 0, 5, 6, 7, 4]);
});

Deno.test("augment names: one vocabulary for --augment, presets and DatasetOptions", () => {
  const off = { crop: false, flip: false, autoAugment: false, cutout: false };
  assert.deepEqual(augmentFlags(undefined), { ...off, crop: true, flip: true });
  assert.deepEqual(augmentFlags("none"), off);
  assert.deepEqual(augmentFlags(["none"]), off);
  assert.deepEqual(augmentFlags(["standard", "cutout"]), { ...off, crop: true, flip: true, cutout: true });
  assert.deepEqual(augmentFlags(["autoaugment"]), { ...off, autoAugment: true });
  assert.deepEqual(augmentFlags("reference"), augmentFlags(["standard", "autoaugment", "cutout"]));
  assert.deepEqual(augmentFlags({ flip: true }), { ...off, flip: true });
  assert.equal(augmentNamesExpected(["standard", "cutout"]), null);
  assert.match(augmentNamesExpected(["blur"])!, /one of none, standard, autoaugment, cutout, reference/);
  assert.match(augmentNamesExpected(["none", "cutout"])!, /none alone/);
  assert.throws(
    () => augmentFlags(["standard", "blur" as AugmentName]),
    /augment: got .*blur.*expected one of/,
  );
  assert.throws(() => augmentFlags(["none", "cutout"]), /none alone/);
  assert.deepEqual(AUGMENT_NAMES, ["none", "standard", "autoaugment", "cutout", "reference"]);
});
