/**
 * Data pipeline throughput (samples/s): CIFAR batches with standard and reference augmentation,
 * ES-ImageNet event-frame encoding, JPEG decode + RandomResizedCrop of a 500x375 JPEG; each in-process
 * and with 2 workers. Data is synthesised in a temporary folder in the exact on-disk formats.
 * `deno run -A bench/data.bench.ts` prints the table; `deno bench -A bench/data.bench.ts` also runs
 * the Deno.bench entries (single-sample costs, in-process).
 */
import jpegJs from "npm:jpeg-js@^0.4.4";
import { DataLoader } from "../src/data/loader.ts";
import { createDataset } from "../src/data/registry.ts";
import type { Dataset, DatasetName, DatasetOptions } from "../src/data/dataset.ts";
import { decodeJpeg } from "../src/data/jpeg.ts";
import { randomResizedCropBox, resizedCrop } from "../src/data/augment/resize.ts";
import { Rng } from "../src/data/rng.ts";
import { cifarPixels, cifarRecords, npzBytes, writeFile } from "../tests/data/writers.ts";

const dir = await Deno.makeTempDir({ prefix: "spikegpu_data_bench_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

// CIFAR-10: 5 x 512 training records.
let seed = 0;
for (const file of [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`).concat("test_batch.bin")) {
  writeFile(
    `${dir}/cifar/cifar-10-batches-bin/${file}`,
    cifarRecords(Array.from({ length: 512 }, () => ({ labels: [seed % 10], pixels: cifarPixels(seed++) }))),
  );
}

// ES-ImageNet: 64 samples of 20,000 + 20,000 events (a typical event-list sample), stored zip.
const lines: string[] = [];
for (let n = 0; n < 64; n++) {
  const events = (count: number) =>
    Uint8Array.from({ length: count * 3 }, (_, i) => {
      const hash = (i * 2654435761 + n) >>> 0;
      return i % 3 === 0 ? hash % 254 : i % 3 === 1 ? hash % 200 : 1 + (hash % 8);
    });
  writeFile(
    `${dir}/es/train/c/s${n}.npz`,
    npzBytes({ pos: [events(20000), [20000, 3]], neg: [events(20000), [20000, 3]] }),
  );
  lines.push(`c/s${n}.npz ${n % 1000} 254 200`);
}
writeFile(`${dir}/es/trainlabel.txt`, lines.join("\n"));

// ImageNet: one 500x375 photo-like JPEG (quality 90), copied 48 times.
const width = 500;
const height = 375;
const rgba = new Uint8Array(width * height * 4);
for (let y = 0; y < height; y++) {
  for (let x = 0; x < width; x++) {
    const i = (y * width + x) * 4;
    const noise = ((x * 7919 + y * 104729) % 41) - 20;
    rgba[i] = 128 + 100 * Math.sin(x / 17 + y / 23) + noise;
    rgba[i + 1] = 128 + 100 * Math.cos(x / 31) + noise;
    rgba[i + 2] = 128 + 80 * Math.sin(y / 13) + noise;
    rgba[i + 3] = 255;
  }
}
const jpeg = jpegJs.encode({ data: rgba, width, height }, 90).data;
for (let n = 0; n < 48; n++) {
  writeFile(`${dir}/imagenet/train/n${String(n % 4).padStart(8, "0")}/img${n}.JPEG`, jpeg);
}

interface Row {
  workload: string;
  workers: number;
  samplesPerSecond: number;
}

/** Samples/s over `epochs` epochs after one warm-up batch (worker start-up excluded). */
async function throughput(
  dataset: Dataset,
  batchSize: number,
  workers: number,
  epochs: number,
): Promise<number> {
  const loader = new DataLoader(dataset, { batchSize, workers, seed: 1, train: true });
  try {
    for await (const _ of loader.epoch(0)) break;
    const start = performance.now();
    let samples = 0;
    for (let epoch = 1; epoch <= epochs; epoch++) {
      for await (const batch of loader.epoch(epoch)) samples += batch.labels.length;
    }
    return samples / ((performance.now() - start) / 1000);
  } finally {
    loader.close();
  }
}

const workloads: [string, DatasetName, DatasetOptions, number, number][] = [
  ["CIFAR-10 batch 128, crop + flip", "cifar10", { dataDir: `${dir}/cifar`, augment: "standard" }, 128, 2],
  [
    "CIFAR-10 batch 128, + AutoAugment + Cutout",
    "cifar10",
    { dataDir: `${dir}/cifar`, augment: "reference" },
    128,
    1,
  ],
  ["ES-ImageNet events -> 8x2x224x224, batch 16", "es-imagenet", { dataDir: `${dir}/es` }, 16, 2],
  ["ImageNet JPEG 500x375 decode + RRC 224, batch 16", "imagenet", { dataDir: `${dir}/imagenet` }, 16, 2],
];
const rows: Row[] = [];
for (const [label, name, options, batchSize, epochs] of workloads) {
  const dataset = await createDataset(name, options);
  for (const workers of [0, 2]) {
    rows.push({
      workload: label,
      workers,
      samplesPerSecond: await throughput(dataset, batchSize, workers, epochs),
    });
  }
}

// Decoding alone, and decode + RandomResizedCrop alone, in-process.
const decodeRate = async (crop: boolean) => {
  const rng = Rng.seeded(0);
  const runs = 30;
  const start = performance.now();
  for (let i = 0; i < runs; i++) {
    const image = await decodeJpeg(jpeg, "bench.JPEG");
    if (crop) resizedCrop(image, randomResizedCropBox(image.width, image.height, rng), 224);
  }
  return runs / ((performance.now() - start) / 1000);
};
await decodeRate(false);
rows.push({ workload: "JPEG 500x375 decode only", workers: 0, samplesPerSecond: await decodeRate(false) });
rows.push({
  workload: "JPEG 500x375 decode + RandomResizedCrop 224",
  workers: 0,
  samplesPerSecond: await decodeRate(true),
});

console.log("\nData pipeline throughput");
for (const row of rows) {
  console.log(
    `  ${row.workload.padEnd(50)} workers ${row.workers}  ${
      row.samplesPerSecond.toFixed(0).padStart(7)
    } samples/s`,
  );
}

const cifar = await createDataset("cifar10", { dataDir: `${dir}/cifar`, augment: "reference" });
const es = await createDataset("es-imagenet", { dataDir: `${dir}/es` });
let benchIndex = 0;
Deno.bench("CIFAR-10 sample, crop + flip + AutoAugment + Cutout", () => {
  cifar.get(benchIndex++ % cifar.length, Rng.seeded(benchIndex), true);
});
Deno.bench("ES-ImageNet sample, read + encode 40k events", async () => {
  await es.get(benchIndex++ % es.length, Rng.seeded(benchIndex), true);
});
Deno.bench("JPEG 500x375 decode + RandomResizedCrop 224", async () => {
  const image = await decodeJpeg(jpeg, "bench.JPEG");
  resizedCrop(image, randomResizedCropBox(image.width, image.height, Rng.seeded(benchIndex++)), 224);
});
