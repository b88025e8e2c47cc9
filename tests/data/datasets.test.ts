/** The data set loaders on small files in their exact on-disk formats, and their bad-input errors. */
import assert from "node:assert/strict";
import { Fixture, FIXTURES } from "../helpers.ts";
import { createDataset } from "../../src/data/registry.ts";
import { CIFAR100_MEAN, CIFAR100_STD, CIFAR10_MEAN, CIFAR10_STD } from "../../src/data/cifar.ts";
import { centerCrop } from "../../src/data/augment/geometry.ts";
import { normalize } from "../../src/data/augment/normalize.ts";
import { resizeShorterSide } from "../../src/data/augment/resize.ts";
import { decodeJpeg } from "../../src/data/jpeg.ts";
import { integrateFrames } from "../../src/data/cifar10_dvs.ts";
import { readNpz, toNumbers } from "../../src/data/npz.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../../src/data/imagenet.ts";
import { Rng } from "../../src/data/rng.ts";
import { cifarPixels, cifarRecords, npzBytes, withTempDir, writeFile } from "./writers.ts";

const DATA = `${FIXTURES}data/`;
const fixture = await Fixture.load("data/formats");
const rng = () => Rng.seeded(1);

/** CIFAR's planar record pixels as the HWC image normalize() takes. */
function planarToImage(pixels: Uint8Array) {
  const data = new Uint8Array(3072);
  for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) data[p * 3 + c] = pixels[c * 1024 + p];
  return { width: 32, height: 32, channels: 3, data };
}

function writeCifar10(dir: string, recordsPerFile = 3) {
  const root = `${dir}/cifar-10-batches-bin`;
  let seed = 0;
  for (const file of [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`).concat("test_batch.bin")) {
    const records = Array.from(
      { length: recordsPerFile },
      () => ({ labels: [seed % 10], pixels: cifarPixels(seed++) }),
    );
    writeFile(`${root}/${file}`, cifarRecords(records));
  }
  writeFile(
    `${root}/batches.meta.txt`,
    "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
  );
  return root;
}

Deno.test("cifar10: records, labels, names, normalisation, augmentation only in training", async () => {
  await withTempDir(async (dir) => {
    writeCifar10(dir);
    const train = await createDataset("cifar10", { dataDir: dir, split: "train" });
    const test = await createDataset("cifar10", { dataDir: `${dir}/cifar-10-batches-bin`, split: "test" });
    assert.equal(train.length, 15);
    assert.equal(test.length, 3);
    assert.equal(train.numClasses, 10);
    assert.equal(train.classNames?.[9], "truck");
    assert.deepEqual(train.sampleShape, [3, 32, 32]);
    const sample = train.get(7, rng(), false) as { data: Float32Array; label: number };
    assert.equal(sample.label, 7);
    assert.deepEqual(sample.data, normalize(planarToImage(cifarPixels(7)), CIFAR10_MEAN, CIFAR10_STD));
    assert.equal((test.get(2, rng(), false) as { label: number }).label, 17 % 10);
    // Training draws change the sample, reproducibly for a given stream.
    const a = train.get(7, Rng.seeded(5), true) as { data: Float32Array };
    const b = train.get(7, Rng.seeded(5), true) as { data: Float32Array };
    assert.deepEqual(a.data, b.data);
    const differs = [1, 2, 3, 4, 6].some((s) =>
      (train.get(7, Rng.seeded(s), true) as { data: Float32Array }).data.some((v, i) => v !== sample.data[i])
    );
    assert.ok(differs, "augmentation never changed the sample");
    const none = await createDataset("cifar10", { dataDir: dir, augment: "none" });
    assert.deepEqual((none.get(7, Rng.seeded(5), true) as { data: Float32Array }).data, sample.data);
    // Reference recipe: Cutout zeroes a square (a 16x16 hole clipped, at least 8x8 of exact zeros per channel).
    const reference = await createDataset("cifar10", { dataDir: dir, augment: "reference" });
    const cut = (reference.get(3, Rng.seeded(9), true) as { data: Float32Array }).data;
    assert.ok(cut.filter((v) => v === 0).length >= 3 * 64);
  });
});

Deno.test("cifar100: fine labels by default, coarse on request, names from the txt files", async () => {
  await withTempDir(async (dir) => {
    const root = `${dir}/cifar-100-binary`;
    const records = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ labels: [i % 20, (i * 7) % 100], pixels: cifarPixels(i) }));
    writeFile(`${root}/train.bin`, cifarRecords(records(4)));
    writeFile(`${root}/test.bin`, cifarRecords(records(2)));
    writeFile(`${root}/fine_label_names.txt`, Array.from({ length: 100 }, (_, i) => `fine${i}`).join("\n"));
    const fine = await createDataset("cifar100", { dataDir: dir });
    assert.equal(fine.numClasses, 100);
    assert.equal(fine.classNames?.[21], "fine21");
    const sample = fine.get(3, rng(), false) as { data: Float32Array; label: number };
    assert.equal(sample.label, 21);
    assert.deepEqual(sample.data, normalize(planarToImage(cifarPixels(3)), CIFAR100_MEAN, CIFAR100_STD));
    const coarse = await createDataset("cifar100", { dataDir: dir, labels: "coarse", split: "test" });
    assert.equal(coarse.numClasses, 20);
    assert.equal(coarse.classNames, undefined);
    assert.equal((coarse.get(1, rng(), false) as { label: number }).label, 1);
  });
});

Deno.test("cifar: missing directory, missing file, partial record, label out of range", async () => {
  await assert.rejects(
    createDataset("cifar10", { dataDir: "/nonexistent/cifar" }),
    /cifar10: directory \/nonexistent\/cifar does not exist/,
  );
  await withTempDir(async (dir) => {
    const root = writeCifar10(dir);
    Deno.removeSync(`${root}/data_batch_3.bin`);
    await assert.rejects(
      createDataset("cifar10", { dataDir: dir }),
      /cifar10: file .*data_batch_3\.bin does not exist/,
    );
    writeFile(
      `${root}/data_batch_3.bin`,
      cifarRecords([{ labels: [1], pixels: cifarPixels(0) }]).subarray(0, 3000),
    );
    await assert.rejects(
      createDataset("cifar10", { dataDir: dir }),
      /data_batch_3\.bin is 3000 bytes, not a multiple of 3073/,
    );
    writeFile(
      `${root}/data_batch_3.bin`,
      cifarRecords([{ labels: [1], pixels: cifarPixels(0) }, { labels: [10], pixels: cifarPixels(1) }]),
    );
    await assert.rejects(
      createDataset("cifar10", { dataDir: dir }),
      /data_batch_3\.bin record 1 has label 10 at byte 0, outside 0\.\.9/,
    );
  });
});

Deno.test("mnist: 8,000 / 2,000 stratified split of the embedded digits, normalised, optional 32x32 padding", async () => {
  const train = await createDataset("mnist", { split: "train" });
  const test = await createDataset("mnist", { split: "test" });
  assert.equal(train.length, 8000);
  assert.equal(test.length, 2000);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < test.length; i++) counts[(test.get(i, rng(), false) as { label: number }).label]++;
  assert.ok(counts.every((c) => c >= 170 && c <= 230), `test split per digit: ${counts}`);
  const sample = train.get(0, rng(), false) as { data: Float32Array; label: number };
  assert.deepEqual(train.sampleShape, [1, 28, 28]);
  assert.equal(sample.data.length, 784);
  const background = Math.fround(Math.fround(0 - Math.fround(0.1307)) / Math.fround(0.3081));
  const ink = Math.fround(Math.fround(1 - Math.fround(0.1307)) / Math.fround(0.3081));
  assert.equal(Math.min(...sample.data), background);
  assert.ok(Math.max(...sample.data) > 2.5 && Math.max(...sample.data) <= ink);
  const padded = await createDataset("mnist", { pad32: true });
  const big = padded.get(0, rng(), false) as { data: Float32Array };
  assert.deepEqual(padded.sampleShape, [1, 32, 32]);
  assert.ok(big.data.subarray(0, 64).every((v) => v === background));
  for (let y = 0; y < 28; y++) {
    assert.deepEqual(
      big.data.subarray((y + 2) * 32 + 2, (y + 2) * 32 + 30),
      sample.data.subarray(y * 28, y * 28 + 28),
    );
  }
});

Deno.test("imagenet: sorted wnid classes, val transform, grayscale + CMYK, undecodable files skipped or fatal", async () => {
  await withTempDir(async (dir) => {
    const jpeg = (name: string) => Deno.readFileSync(`${DATA}jpeg/${name}.jpg`);
    writeFile(`${dir}/train/n02/b.JPEG`, jpeg("cmyk"));
    writeFile(`${dir}/train/n02/broken.JPEG`, new Uint8Array(500).fill(3));
    writeFile(`${dir}/train/n01/a.JPEG`, jpeg("rgb"));
    writeFile(`${dir}/train/n01/c.jpeg`, jpeg("gray"));
    writeFile(`${dir}/train/n01/notes.txt`, "not an image");
    writeFile(`${dir}/val/n02/v.JPEG`, jpeg("gray"));
    const train = await createDataset("imagenet", { dataDir: dir, split: "train" });
    assert.equal(train.length, 4);
    assert.deepEqual(train.classNames, ["n01", "n02"]);
    const val = await createDataset("imagenet", { dataDir: dir, split: "test" });
    assert.equal(val.length, 1);
    const v = (await val.get(0, rng(), false))!;
    assert.equal(v.label, 1);
    const decoded = await decodeJpeg(jpeg("gray"), "gray.jpg");
    assert.deepEqual(
      v.data,
      normalize(centerCrop(resizeShorterSide(decoded, 256), 224, 224), IMAGENET_MEAN, IMAGENET_STD),
    );
    const augmented = (await train.get(2, Rng.seeded(4), true))!;
    assert.equal(augmented.data.length, 3 * 224 * 224);
    assert.equal(augmented.label, 1);
    assert.deepEqual((await train.get(2, Rng.seeded(4), true))!.data, augmented.data);
    const originalWarn = console.warn;
    const warnings: string[] = [];
    console.warn = (message: string) => warnings.push(message);
    try {
      assert.equal(await train.get(3, rng(), true), null);
    } finally {
      console.warn = originalWarn;
    }
    assert.equal(train.skipped, 1);
    assert.match(warnings[0], /train\/n02\/broken\.JPEG does not decode.*skipped \(1 so far\)/);
    const strict = await createDataset("imagenet", { dataDir: dir, onDecodeError: "stop" });
    await assert.rejects(Promise.resolve(strict.get(3, rng(), true)), /broken\.JPEG does not decode/);
    await assert.rejects(
      createDataset("imagenet", { dataDir: `${dir}/nothing` }),
      /imagenet: directory .*nothing does not exist/,
    );
  });
});

/** Flat (T, C, H, W) indices of the non-zero elements. */
function nonzero(data: Float32Array): number[] {
  const out: number[] = [];
  data.forEach((v, i) => {
    if (v !== 0) out.push(i);
  });
  return out;
}

Deno.test("es-imagenet: event lists encode as the official loader does, in both splits", async () => {
  for (const split of ["train", "test"] as const) {
    const dataset = await createDataset("es-imagenet", { dataDir: `${DATA}es`, split });
    assert.equal(dataset.length, 1);
    assert.deepEqual(dataset.sampleShape, [8, 2, 224, 224]);
    const sample = (await dataset.get(0, rng(), false))!;
    assert.equal(sample.label, split === "train" ? 3 : 7);
    assert.ok(sample.data.every((v) => v === 0 || v === 1));
    assert.deepEqual(
      nonzero(sample.data),
      Array.from(fixture.ints(`es_${split === "train" ? "train" : "val"}_nonzero`)),
    );
  }
  // T = 4 merges pairs of bins by logical or; a training flip mirrors the width axis.
  const full =
    (await (await createDataset("es-imagenet", { dataDir: `${DATA}es` })).get(0, rng(), false))!.data;
  const merged =
    (await (await createDataset("es-imagenet", { dataDir: `${DATA}es`, T: 4 })).get(0, rng(), false))!.data;
  const plane = 2 * 224 * 224;
  for (let t = 0; t < 4; t++) {
    for (let i = 0; i < plane; i += 97) {
      assert.equal(merged[t * plane + i], Math.max(full[2 * t * plane + i], full[(2 * t + 1) * plane + i]));
    }
  }
  const dataset = await createDataset("es-imagenet", { dataDir: `${DATA}es` });
  let flipped: Float32Array | undefined;
  for (let s = 0; s < 20 && !flipped; s++) {
    const d = (await dataset.get(0, Rng.seeded(s), true))!.data;
    if (d.some((v, i) => v !== full[i])) flipped = d;
  }
  assert.ok(flipped, "no flip in 20 draws");
  for (let row = 0; row < 8 * 2 * 224; row += 13) {
    assert.deepEqual(
      flipped.subarray(row * 224, row * 224 + 224),
      full.subarray(row * 224, row * 224 + 224).slice().reverse(),
    );
  }
});

Deno.test("es-imagenet: pre-framed arr_0 with csv labels", async () => {
  await withTempDir(async (dir) => {
    const frames = new Int8Array(2 * 8 * 224 * 224);
    for (let i = 0; i < frames.length; i += 1237) frames[i] = 1;
    writeFile(`${dir}/train/a/x.npz`, npzBytes({ arr_0: [frames, [2, 8, 224, 224]] }));
    writeFile(`${dir}/train.csv`, "path,class\na/x.npz,42\n");
    const dataset = await createDataset("es-imagenet", { dataDir: dir });
    const sample = (await dataset.get(0, rng(), false))!;
    assert.equal(sample.label, 42);
    const plane = 224 * 224;
    for (let c = 0; c < 2; c++) {
      for (let t = 0; t < 8; t++) {
        assert.deepEqual(
          sample.data.subarray((t * 2 + c) * plane, (t * 2 + c + 1) * plane),
          Float32Array.from(frames.subarray((c * 8 + t) * plane, (c * 8 + t + 1) * plane)),
        );
      }
    }
  });
});

Deno.test("es-imagenet: bad label lines, labels out of range, events outside the frame, missing files", async () => {
  await withTempDir(async (dir) => {
    const events = (rows: number[]) =>
      npzBytes({
        pos: [Uint8Array.from(rows.flatMap((r) => [r, 5, 1])), [rows.length, 3]],
        neg: [new Uint8Array(0), [0, 3]],
      });
    writeFile(`${dir}/train/class1/s.npz`, events([10, 250]));
    writeFile(`${dir}/trainlabel.txt`, "class1/s.npz 1 100 254\n");
    const dataset = await createDataset("es-imagenet", { dataDir: dir });
    // a = 100 -> dx = 77: row 250 lands at 327.
    await assert.rejects(
      Promise.resolve(dataset.get(0, rng(), false)),
      /s\.npz: pos event 1 \(row 250, col 5, t 1\) lands at \(327, 5\) with offsets \(77, 0\).*outside the 256x256 frame/,
    );
    writeFile(`${dir}/trainlabel.txt`, "class1/s.npz 1 100 254\nclass1/s.npz one 100 254\n");
    await assert.rejects(
      createDataset("es-imagenet", { dataDir: dir }),
      /trainlabel\.txt line 2 does not parse: expected "<path>\.npz <label> <a> <b>"/,
    );
    writeFile(`${dir}/trainlabel.txt`, "class1/s.npz 1000 100 254\n");
    await assert.rejects(
      createDataset("es-imagenet", { dataDir: dir }),
      /trainlabel\.txt line 1 has label 1000, outside 0\.\.999/,
    );
    writeFile(`${dir}/trainlabel.txt`, "class1/gone.npz 1 100 254\n");
    await assert.rejects(
      createDataset("es-imagenet", { dataDir: dir }),
      /trainlabel\.txt line 1 names class1\/gone\.npz, found neither at/,
    );
    Deno.removeSync(`${dir}/trainlabel.txt`);
    await assert.rejects(
      createDataset("es-imagenet", { dataDir: dir }),
      /es-imagenet: .* has no label file: looked for .*trainlabel\.txt/,
    );
    writeFile(`${dir}/trainlabel.txt`, "class1/s.npz 1 100 254\n");
    writeFile(`${dir}/train/class1/s.npz`, new TextEncoder().encode("not a zip at all, really not"));
    await assert.rejects(
      Promise.resolve((await createDataset("es-imagenet", { dataDir: dir })).get(0, rng(), false)),
      /s\.npz .*not a zip archive/,
    );
  });
});

Deno.test("cifar10-dvs: SpikingJelly frame integration by event count, 48x48 bilinear resize", async () => {
  const dataset = await createDataset("cifar10-dvs", { dataDir: `${DATA}dvs`, T: 4 });
  assert.deepEqual(dataset.classNames, ["airplane", "automobile"]);
  assert.deepEqual(dataset.sampleShape, [4, 2, 48, 48]);
  assert.equal(dataset.length, 2); // ceil(0.9 * 1) = 1 per class
  const index = [0, 1].find((i) =>
    (dataset as unknown as { path(i: number): string }).path(i).includes("airplane")
  )!;
  // Integration alone, against the numpy restatement of SpikingJelly (exact counts).
  const arrays = await readNpz(`${DATA}dvs/airplane/sample_0.npz`);
  const [t, x, y, p] = ["t", "x", "y", "p"].map((k) => toNumbers(arrays.get(k)!, k));
  const counts = integrateFrames(x, y, p, t.length, 4, 128, 128, "sample_0.npz");
  assert.deepEqual(nonzero(counts), Array.from(fixture.ints("dvs_counts_index")));
  assert.deepEqual(nonzero(counts).map((i) => counts[i]), Array.from(fixture.ints("dvs_counts_value")));
  const sample = (await dataset.get(index, rng(), false))!;
  assert.equal(sample.label, 0);
  const expected = fixture.floats("dvs_frames");
  assert.equal(sample.data.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(sample.data[i] - expected[i]) <= 1e-4 * Math.max(1, Math.abs(expected[i])),
      `element ${i}: ${sample.data[i]} vs ${expected[i]}`,
    );
  }
  // uint8/uint32 dtypes (the second class's file) load too.
  assert.equal((await dataset.get(1 - index, rng(), false))!.label, 1);
});

Deno.test("cifar10-dvs: per-class 9:1 split by seed, augmentation, coordinates outside the sensor", async () => {
  await withTempDir(async (dir) => {
    const event = (n: number, xMax: number) => {
      const xs = Int32Array.from({ length: n }, (_, i) => (i * 37) % xMax);
      return npzBytes({
        t: [BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [n]],
        x: [xs, [n]],
        y: [Int32Array.from({ length: n }, (_, i) => (i * 11) % 128), [n]],
        p: [Int32Array.from({ length: n }, (_, i) => i % 2), [n]],
      });
    };
    for (const cls of ["cat", "dog"]) {
      for (let i = 0; i < 10; i++) writeFile(`${dir}/events_np/${cls}/${cls}_${i}.npz`, event(40 + i, 128));
    }
    const paths = async (split: "train" | "test", splitSeed = 0) => {
      const d = await createDataset("cifar10-dvs", { dataDir: dir, split, splitSeed }) as unknown as {
        length: number;
        path(i: number): string;
      };
      return Array.from({ length: d.length }, (_, i) => d.path(i));
    };
    const train = await paths("train");
    const test = await paths("test");
    assert.equal(train.length, 18);
    assert.equal(test.length, 2);
    assert.equal(test.filter((p) => p.includes("/cat/")).length, 1);
    assert.ok(test.every((p) => !train.includes(p)));
    assert.deepEqual(await paths("test"), test);
    const others = await Promise.all([1, 2, 3, 4, 5].map((s) => paths("test", s)));
    assert.ok(others.some((o) => o.join() !== test.join()), "the split does not depend on the seed");
    const dataset = await createDataset("cifar10-dvs", { dataDir: dir });
    const plain = (await dataset.get(0, rng(), false))!.data;
    const a = (await dataset.get(0, Rng.seeded(3), true))!.data;
    assert.deepEqual((await dataset.get(0, Rng.seeded(3), true))!.data, a);
    // Roll and flip only move values: the multiset of values is unchanged.
    assert.deepEqual(Array.from(a).sort(), Array.from(plain).sort());
    writeFile(`${dir}/events_np/cat/cat_0.npz`, event(300, 200));
    const bad = await createDataset("cifar10-dvs", { dataDir: dir, split: "test", splitSeed: 0 });
    const all = await createDataset("cifar10-dvs", { dataDir: dir, trainRatio: 1 }) as unknown as {
      length: number;
      path(i: number): string;
      get(i: number, r: Rng, t: boolean): Promise<unknown>;
    };
    const badIndex = Array.from({ length: all.length }, (_, i) => i).find((i) =>
      all.path(i).endsWith("cat_0.npz")
    )!;
    await assert.rejects(
      all.get(badIndex, rng(), false),
      /cat_0\.npz: event \d+ at \(x 1\d\d, y \d+\) is outside the 128x128 sensor/,
    );
    assert.ok(bad.length === 2);
    await assert.rejects(
      createDataset("cifar10-dvs", { dataDir: `${dir}/missing` }),
      /cifar10-dvs: directory .*missing does not exist/,
    );
  });
});

Deno.test("createDataset: unknown names and splits are errors", async () => {
  await assert.rejects(createDataset("svhn" as "mnist"), /unknown data set "svhn"/);
  await assert.rejects(createDataset("mnist", { split: "val" as "test" }), /split must be "train" or "test"/);
});
