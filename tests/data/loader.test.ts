/** DataLoader: batch layout, epochs, partial batches, determinism across worker counts, skips, errors. */
import assert from "node:assert/strict";
import { type Batch, collate, DataLoader } from "../../src/data/loader.ts";
import type { Dataset, Sample } from "../../src/data/dataset.ts";
import { createDataset } from "../../src/data/registry.ts";
import { Rng } from "../../src/data/rng.ts";
import { npzBytes, withTempDir, writeFile } from "./writers.ts";

/** A synthetic data set whose samples encode (index, first random draw) so batches can be checked. */
function syntheticDataset(length: number, sampleShape: number[]): Dataset {
  const size = sampleShape.reduce((a, b) => a * b, 1);
  return {
    name: "synthetic",
    length,
    numClasses: 3,
    sampleShape,
    get(index: number, rng: Rng): Sample {
      const draw = rng.nextUint32();
      return {
        data: Float32Array.from({ length: size }, (_, i) => index * 1000 + i + (draw % 7) / 10),
        label: index % 3,
      };
    },
  };
}

async function collect(loader: DataLoader, epoch: number): Promise<Batch[]> {
  const batches: Batch[] = [];
  for await (const batch of loader.epoch(epoch)) batches.push(batch);
  return batches;
}

Deno.test("collate: images as (B, C, H, W), events time-major as (T, B, C, H, W)", () => {
  const samples = [0, 1].map((b) => ({
    data: Float32Array.from({ length: 3 * 2 }, (_, i) => b * 100 + i),
    label: b,
  }));
  const images = collate(samples, [6, 1, 1], "s");
  assert.deepEqual(images.shape, [2, 6, 1, 1]);
  assert.deepEqual(Array.from(images.data), [0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105]);
  // Samples (T=3, C=2, 1, 1): batch element [t, b, c] = sample_b[t, c].
  const events = collate(samples, [3, 2, 1, 1], "s");
  assert.deepEqual(events.shape, [3, 2, 2, 1, 1]);
  assert.deepEqual(Array.from(events.data), [0, 1, 100, 101, 2, 3, 102, 103, 4, 5, 104, 105]);
  assert.deepEqual(Array.from(events.labels), [0, 1]);
  assert.throws(() => collate(samples, [4, 1, 1], "s"), /s: a sample has 6 values, expected \[4, 1, 1\] = 4/);
});

Deno.test("DataLoader: an epoch covers every sample once, shuffled by seed; partial batch kept or dropped", async () => {
  const dataset = syntheticDataset(10, [2, 1, 1]);
  const loader = new DataLoader(dataset, { batchSize: 4, seed: 3 });
  assert.equal(loader.batchesPerEpoch, 3);
  assert.equal(loader.length, 10);
  assert.equal(loader.numClasses, 3);
  const batches = await collect(loader, 0);
  assert.deepEqual(batches.map((b) => b.shape), [[4, 2, 1, 1], [4, 2, 1, 1], [2, 2, 1, 1]]);
  const seen = batches.flatMap((b) =>
    Array.from({ length: b.labels.length }, (_, i) => Math.floor(b.data[i * 2] / 1000))
  );
  assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const again = await collect(new DataLoader(dataset, { batchSize: 4, seed: 3 }), 0);
  assert.deepEqual(again.map((b) => Array.from(b.data)), batches.map((b) => Array.from(b.data)));
  const nextEpoch = await collect(loader, 1);
  assert.notDeepEqual(nextEpoch.map((b) => Array.from(b.data)), batches.map((b) => Array.from(b.data)));
  const dropped = await collect(new DataLoader(dataset, { batchSize: 4, seed: 3, dropLast: true }), 0);
  assert.equal(dropped.length, 2);
  const ordered = await collect(new DataLoader(dataset, { batchSize: 4, shuffle: false }), 0);
  assert.deepEqual(Array.from(ordered[0].labels), [0, 1, 2, 0]);
  // Resuming mid-epoch yields the same remaining batches.
  const resumed: Batch[] = [];
  for await (const b of loader.epoch(0, 1)) resumed.push(b);
  assert.deepEqual(resumed.map((b) => b.index), [1, 2]);
  assert.deepEqual(Array.from(resumed[0].data), Array.from(batches[1].data));
});

// Each worker spawn type-checks the worker's module graph under `deno test --check` (tens of seconds on
// a busy 2-core machine), so one loader with two workers covers the worker path: event batches equal
// the in-process ones, and a file that breaks between epochs surfaces as an error naming it.
Deno.test("DataLoader: 2 workers give the in-process batches (time-major events); worker errors reach the consumer", async () => {
  await withTempDir(async (dir) => {
    const lines: string[] = [];
    for (let n = 0; n < 5; n++) {
      const events = (count: number) =>
        Uint8Array.from(
          { length: count * 3 },
          (_, i) => (i % 3 === 2 ? 1 + ((i * 5 + n) % 8) : (i * 53 + n * 7) % 200),
        );
      writeFile(
        `${dir}/train/c/s${n}.npz`,
        npzBytes({ pos: [events(300), [300, 3]], neg: [events(200 + n), [200 + n, 3]] }),
      );
      lines.push(`c/s${n}.npz ${n} 200 220`);
    }
    writeFile(`${dir}/trainlabel.txt`, lines.join("\n"));
    const dataset = await createDataset("es-imagenet", { dataDir: dir, T: 2 });
    const inProcess = await collect(new DataLoader(dataset, { batchSize: 2, seed: 5 }), 1);
    assert.deepEqual(inProcess.map((b) => b.shape), [[2, 2, 2, 224, 224], [2, 2, 2, 224, 224], [
      2,
      1,
      2,
      224,
      224,
    ]]);
    // Time-major: batch[t, b] is sample b's frame t.
    const first = (await dataset.get(
      Array.from(inProcess[0].labels)[1],
      Rng.seeded(5, 1, inProcess[0].labels[1]),
      true,
    ))!;
    const frame = 2 * 224 * 224;
    assert.deepEqual(inProcess[0].data.subarray(frame * 3, frame * 4), first.data.subarray(frame, frame * 2));
    const loader = new DataLoader(dataset, { batchSize: 2, seed: 5, workers: 2 });
    try {
      const pooled = await collect(loader, 1);
      assert.equal(pooled.length, 3);
      pooled.forEach((batch, i) => {
        assert.deepEqual(batch.shape, inProcess[i].shape);
        assert.deepEqual(batch.labels, inProcess[i].labels);
        assert.deepEqual(batch.data, inProcess[i].data);
      });
      writeFile(`${dir}/train/c/s3.npz`, "broken");
      await assert.rejects(collect(loader, 2), /train\/c\/s3\.npz .*not a zip archive/);
    } finally {
      loader.close();
    }
  });
  assert.throws(
    () => new DataLoader(syntheticDataset(3, [1, 1, 1]), { batchSize: 1, workers: 2 }),
    /has no spec to rebuild it in a worker/,
  );
  assert.throws(
    () => new DataLoader(syntheticDataset(3, [1, 1, 1]), { batchSize: 0 }),
    /batchSize must be a positive integer/,
  );
});

Deno.test("DataLoader: skipped samples shrink their batch and are counted", async () => {
  const base = syntheticDataset(6, [1, 1, 1]);
  const dataset: Dataset = {
    ...base,
    get: (index, rng, train) => (index === 4 ? null : base.get(index, rng, train)),
  };
  const loader = new DataLoader(dataset, { batchSize: 3, shuffle: false });
  const batches = await collect(loader, 0);
  assert.deepEqual(batches.map((b) => b.labels.length), [3, 2]);
  assert.deepEqual(batches.map((b) => b.skipped), [0, 1]);
  assert.equal(loader.skipped, 1);
});
