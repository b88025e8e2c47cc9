/**
 * A DataLoader worker: reopens the data set from its spec, then builds the batches it is sent and
 * posts them back with their buffers transferred.
 */
/// <reference lib="deno.worker" />
import type { Dataset, DatasetSpec } from "./dataset.ts";
import { buildBatch } from "./loader.ts";
import { createDataset } from "./registry.ts";

let dataset: Promise<Dataset> | null = null;
let seed = 0;
let train = false;

self.onmessage = async (event: MessageEvent) => {
  const message = event.data;
  if (message.type === "init") {
    const spec = message.spec as DatasetSpec;
    seed = message.seed;
    train = message.train;
    dataset = createDataset(spec.name, spec.options);
    // Marked handled here; each batch request awaits it and reports the error.
    dataset.catch(() => {});
    return;
  }
  if (message.type !== "batch") return;
  try {
    if (!dataset) throw new Error("data worker: a batch was requested before init");
    const batch = await buildBatch(await dataset, message.indices, message.epoch, seed, train);
    self.postMessage({ type: "batch", id: message.id, ...batch }, [
      batch.data.buffer as ArrayBuffer,
      batch.labels.buffer as ArrayBuffer,
    ]);
  } catch (error) {
    self.postMessage({ type: "error", id: message.id, message: (error as Error).message });
  }
};
