/**
 * `deno task export-nir --resume <ckpt> --out model.nir`: a training checkpoint's SNN (eval mode, no
 * surrogate modules) as a NIR graph file (docs/nir.md). Every input problem stops with a message before
 * anything is written; the file is written atomically.
 */
import { parseArgs } from "node:util";
import { initGpu } from "../gpu/device.ts";
import { readCheckpoint, restoreArray } from "../io/checkpoint.ts";
import { exportNir, type NirExportSummary } from "../io/nir.ts";
import { DEFAULT_DT } from "../io/nir_graph.ts";
import type { NamedArray } from "../io/safetensors.ts";
import { loadStateDict } from "../io/state_dict.ts";
import { createModel, type ModelOptions, type SpikingModel } from "../models/registry.ts";

const HELP = `deno task export-nir --resume <checkpoint> --out <file.nir> [options]

Writes the checkpoint's spiking network, without its surrogate modules and with BatchNorm folded into
the convolutions, as a NIR graph (HDF5) that nir.read, snnTorch's import_from_nir and other NIR tools load.

  --resume <path>        training checkpoint (runs/<run>/checkpoints/*.ckpt)              (required)
  --out <path>           the NIR file to write                                           (required)
  --input-shape C,H,W    one sample's shape; default from the checkpoint's --dataset
                         (mnist 1,28,28; cifar10/cifar100 3,32,32; imagenet 3,224,224;
                          es-imagenet 2,224,224; cifar10-dvs 2,48,48)
  --dt <seconds>         the time step the neuron parameters are stated for (default ${DEFAULT_DT})
  --input static|events  how the T steps are fed (default: events for 2-channel input)
  --model <name>         fail unless the checkpoint holds this model
  --help                 this text`;

/** One sample's (C, H, W) for the data sets the trainer reads, as they reach the model. */
const DATASET_SHAPES: Record<string, number[]> = {
  mnist: [1, 28, 28],
  cifar10: [3, 32, 32],
  cifar100: [3, 32, 32],
  imagenet: [3, 224, 224],
  "es-imagenet": [2, 224, 224],
  "cifar10-dvs": [2, 48, 48],
};

export interface LoadedModel {
  model: SpikingModel;
  name: string;
  /** The checkpoint's run configuration (its flags). */
  config: Record<string, unknown>;
}

/** Rebuilds the model a checkpoint was trained as and loads its weights (errors name the file). */
export async function loadCheckpointModel(path: string, expectedModel?: string): Promise<LoadedModel> {
  const checkpoint = await readCheckpoint(path).catch((error: Error) => {
    throw new Error(`--resume: ${error.message}`);
  });
  const { name } = checkpoint.model;
  if (expectedModel !== undefined && name !== expectedModel) {
    throw new Error(
      `--resume: ${path} holds a ${name} model, not the ${expectedModel} that --model asks for`,
    );
  }
  // Checkpoints written before the option was renamed name the modules `surrogate`.
  const { surrogate, ...saved } = checkpoint.model.options;
  const options = { modules: surrogate, ...saved } as unknown as ModelOptions;
  let model: SpikingModel;
  try {
    model = createModel(name, options);
  } catch (error) {
    throw new Error(`--resume: ${path}: cannot rebuild its model: ${(error as Error).message}`);
  }
  try {
    const arrays = new Map<string, NamedArray>();
    for (const [key, stored] of Object.entries(checkpoint.weights)) {
      const data = restoreArray(stored, `${path}: ${key}`) as Float32Array | BigInt64Array;
      arrays.set(key, { dtype: stored.dtype === "i64" ? "I64" : "F32", shape: stored.shape, data });
    }
    loadStateDict(model, arrays, { source: path });
  } catch (error) {
    model.dispose();
    throw new Error(`--resume: ${(error as Error).message}`);
  }
  model.eval();
  return { model, name, config: checkpoint.config };
}

interface ExportArgs {
  resume: string;
  out: string;
  inputShape?: number[];
  dt: number;
  input?: "static" | "events";
  model?: string;
}

/** Parses the flags; throws a message naming the flag on bad input, null for --help. */
export function parseExportArgs(args: string[]): ExportArgs | null {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        resume: { type: "string" },
        out: { type: "string" },
        "input-shape": { type: "string" },
        dt: { type: "string" },
        input: { type: "string" },
        model: { type: "string" },
        help: { type: "boolean" },
      },
    }));
  } catch (error) {
    throw new Error(`export-nir: ${(error as Error).message} (see --help)`);
  }
  if (values.help) return null;
  if (!values.resume) throw new Error("--resume: required: the checkpoint to export");
  if (!values.out) throw new Error("--out: required: the NIR file to write (e.g. model.nir)");
  let inputShape: number[] | undefined;
  if (values["input-shape"] !== undefined) {
    inputShape = values["input-shape"].split(",").map(Number);
    if (inputShape.length !== 3 || !inputShape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new Error(`--input-shape: expected C,H,W of positive integers, got "${values["input-shape"]}"`);
    }
  }
  const dt = values.dt === undefined ? DEFAULT_DT : Number(values.dt);
  if (!(dt > 0) || !Number.isFinite(dt)) {
    throw new Error(`--dt: expected a positive number, got "${values.dt}"`);
  }
  const input = values.input;
  if (input !== undefined && input !== "static" && input !== "events") {
    throw new Error(`--input: expected static or events, got "${input}"`);
  }
  return { resume: values.resume, out: values.out, inputShape, dt, input, model: values.model };
}

/** Runs the command; returns what was written. */
export async function exportNirCommand(args: ExportArgs): Promise<NirExportSummary> {
  await initGpu();
  const { model, config } = await loadCheckpointModel(args.resume, args.model);
  try {
    let inputShape = args.inputShape;
    if (!inputShape) {
      const dataset = String(config.dataset ?? "");
      inputShape = DATASET_SHAPES[dataset];
      if (!inputShape) {
        throw new Error(
          `--input-shape: required: ${args.resume} was trained on "${dataset}", whose sample shape is not known`,
        );
      }
    }
    return await exportNir(model, args.out, { inputShape, dt: args.dt, input: args.input });
  } finally {
    model.dispose();
  }
}

if (import.meta.main) {
  try {
    const args = parseExportArgs(Deno.args);
    if (!args) {
      console.log(HELP);
    } else {
      const summary = await exportNirCommand(args);
      console.log(
        `wrote ${summary.path}: NIR ${summary.version}, ${summary.nodes} nodes, ${summary.edges} edges, ` +
          `${summary.bytes} bytes`,
      );
    }
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
