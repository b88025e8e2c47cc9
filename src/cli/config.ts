/**
 * The run configuration: every `deno task train` flag, its default, its check, and how a preset from
 * pipelines/ supplies defaults that explicit flags override. Bad values stop here, before any work.
 */
import { parseArgs } from "node:util";
import { MODEL_NAMES } from "../models/registry.ts";
import { PRESETS } from "../../pipelines/presets.ts";

export const DATASETS = ["mnist", "cifar10", "cifar100", "imagenet", "es-imagenet", "cifar10-dvs"] as const;
export type DatasetName = typeof DATASETS[number];
export const AUGMENTS = ["none", "standard", "autoaugment", "cutout"] as const;
export type Augment = typeof AUGMENTS[number];

export interface RunConfig {
  preset: string;
  dataset: DatasetName;
  dataDir: string;
  model: string;
  /** ResNet stem width (64 = published) or plain-CNN first width. */
  width: number;
  /** Extra layers of the `plain` network. */
  depth: number;
  T: number;
  batchSize: number;
  epochs: number;
  lr: number;
  optimizer: "sgd" | "adam" | "adamw";
  momentum: number;
  weightDecay: number;
  schedule: "cosine" | "none";
  cosTMax: number;
  warmupEpochs: number;
  sbPlaces: number[];
  sbKernels: number[][];
  sbWidth: number;
  sbLocal: boolean;
  noSb: boolean;
  temperature: number;
  alpha: number;
  lambda: number;
  surrogate: "dspike" | "sigmoid" | "atan";
  augment: Augment[];
  workers: number;
  prefetch: number;
  dropLast: boolean;
  seed: number;
  outputDir: string;
  resume: string;
  initWeights: string;
  exportWeights: string;
  testOnly: boolean;
  f16: boolean;
  evalEvery: number;
  logEvery: number;
  checkpointEvery: number;
  maxSteps: number;
  /** Limit the training set to this many samples (0: all), for smoke runs. */
  trainLimit: number;
  testLimit: number;
  probe: boolean;
  /** Require a data-parallel job (an MPI launcher); without the flag a launcher is still detected. */
  distributed: boolean;
}

interface FlagSpec {
  key: keyof RunConfig;
  type: "string" | "boolean";
  help: string;
}

/** Flag name -> config key, in --help order. */
export const FLAGS: Record<string, FlagSpec> = {
  "preset": {
    key: "preset",
    type: "string",
    help: `hyperparameter preset: ${Object.keys(PRESETS).join(", ")}`,
  },
  "dataset": { key: "dataset", type: "string", help: DATASETS.join("|") },
  "data-dir": { key: "dataDir", type: "string", help: "data set root folder (not needed for mnist)" },
  "model": { key: "model", type: "string", help: MODEL_NAMES.join("|") },
  "width": { key: "width", type: "string", help: "ResNet stem width (64 = the published networks)" },
  "depth": { key: "depth", type: "string", help: "extra 128-channel layers of the plain network" },
  "T": { key: "T", type: "string", help: "time steps (>= 1)" },
  "batch-size": { key: "batchSize", type: "string", help: "samples per step" },
  "epochs": { key: "epochs", type: "string", help: "training epochs" },
  "lr": { key: "lr", type: "string", help: "base learning rate" },
  "optimizer": { key: "optimizer", type: "string", help: "sgd|adam|adamw" },
  "momentum": { key: "momentum", type: "string", help: "SGD momentum" },
  "weight-decay": { key: "weightDecay", type: "string", help: "weight decay (decoupled for adamw)" },
  "schedule": { key: "schedule", type: "string", help: "cosine|none (per epoch)" },
  "cos-T-max": { key: "cosTMax", type: "string", help: "cosine length in epochs (0: --epochs)" },
  "warmup-epochs": { key: "warmupEpochs", type: "string", help: "linear warm-up epochs" },
  "sb-places": {
    key: "sbPlaces",
    type: "string",
    help: "surrogate module positions, incremental blocks: 3,3",
  },
  "sb-kernels": { key: "sbKernels", type: "string", help: "kernels per module, digits of 7/5/3/1: 753,753" },
  "sb-width": { key: "sbWidth", type: "string", help: "surrogate module width k" },
  "sb-local": {
    key: "sbLocal",
    type: "boolean",
    help: "detach the backbone at the modules (no shortcut gradient)",
  },
  "no-sb": { key: "noSb", type: "boolean", help: "no surrogate modules: plain surrogate-gradient training" },
  "temperature": { key: "temperature", type: "string", help: "SML distillation temperature" },
  "alpha": { key: "alpha", type: "string", help: "SML weight of module cross-entropy" },
  "lambda": { key: "lambda", type: "string", help: "SML weight of the soft (KL) part" },
  "surrogate": { key: "surrogate", type: "string", help: "LIF surrogate gradient: dspike|sigmoid|atan" },
  "augment": { key: "augment", type: "string", help: "none|standard|autoaugment,cutout (comma-separated)" },
  "workers": { key: "workers", type: "string", help: "data loading workers (0: in-process)" },
  "prefetch": { key: "prefetch", type: "string", help: "batches prepared ahead" },
  "drop-last": { key: "dropLast", type: "boolean", help: "drop the last partial training batch" },
  "seed": { key: "seed", type: "string", help: "seed of initialisation, data order and augmentation" },
  "output-dir": {
    key: "outputDir",
    type: "string",
    help: "run folder (config, metrics, checkpoints, plots)",
  },
  "resume": { key: "resume", type: "string", help: "checkpoint to continue from (.ckpt)" },
  "init-weights": { key: "initWeights", type: "string", help: "start from reference-named .safetensors" },
  "export-weights": { key: "exportWeights", type: "string", help: "write .safetensors when training ends" },
  "test-only": { key: "testOnly", type: "boolean", help: "evaluate only (with --resume or --init-weights)" },
  "f16": {
    key: "f16",
    type: "boolean",
    help: "mixed precision: f16 convolutions, f32 elsewhere, dynamic loss scaling (needs shader-f16)",
  },
  "eval-every": { key: "evalEvery", type: "string", help: "evaluate every N epochs" },
  "log-every": { key: "logEvery", type: "string", help: "read metrics and log every N steps" },
  "checkpoint-every": {
    key: "checkpointEvery",
    type: "string",
    help: "also checkpoint every N steps (0: epochs)",
  },
  "max-steps": { key: "maxSteps", type: "string", help: "stop after N steps in total (0: no limit)" },
  "train-limit": {
    key: "trainLimit",
    type: "string",
    help: "use only the first N training samples (0: all)",
  },
  "test-limit": { key: "testLimit", type: "string", help: "use only the first N test samples (0: all)" },
  "probe": { key: "probe", type: "boolean", help: "print the gradient-error probe on one batch and exit" },
  "distributed": {
    key: "distributed",
    type: "boolean",
    help: "data-parallel over MPI ranks (mpirun/srun); an error without a launcher",
  },
};

/**
 * The embedded default (and the base every preset overrides): a narrow spiking ResNet-18 (stem width 8,
 * CIFAR stem so 28x28 digits keep their resolution) with two surrogate modules of width 16 after blocks
 * 3 and 6, T = 1, AdamW with the paper's lr and decay over 4 epochs (95.85% test top-1 in about 9 min
 * on 2 cores with an empty shader cache; 5 epochs reach 96.15% in 10 min 51 s). lambda = 0.5: in the
 * PyTorch reference on these digits it reached 94.9% after 3 epochs where the CIFAR value 0.9 reached
 * 93.8%.
 */
export const DEFAULTS: RunConfig = {
  preset: "mnist",
  dataset: "mnist",
  dataDir: "",
  model: "resnet18",
  width: 8,
  depth: 0,
  T: 1,
  batchSize: 32,
  epochs: 4,
  lr: 0.01,
  optimizer: "adamw",
  momentum: 0.9,
  weightDecay: 0.02,
  schedule: "cosine",
  cosTMax: 0,
  warmupEpochs: 0,
  sbPlaces: [3, 3],
  sbKernels: [[7, 5, 3]],
  sbWidth: 16,
  sbLocal: false,
  noSb: false,
  temperature: 3,
  alpha: 0.5,
  lambda: 0.5,
  surrogate: "dspike",
  augment: ["none"],
  workers: 0,
  prefetch: 2,
  dropLast: false,
  seed: 0,
  outputDir: "",
  resume: "",
  initWeights: "",
  exportWeights: "",
  testOnly: false,
  f16: false,
  evalEvery: 1,
  logEvery: 25,
  checkpointEvery: 0,
  maxSteps: 0,
  trainLimit: 0,
  testLimit: 0,
  probe: false,
  distributed: false,
};

function fail(flag: string, value: unknown, expected: string): never {
  throw new Error(`--${flag}: got ${JSON.stringify(value)}, expected ${expected}`);
}

function integer(flag: string, text: string, min: number): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isInteger(value) || value < min) {
    fail(flag, text, `a whole number >= ${min}`);
  }
  return value;
}

function real(flag: string, text: string, min: number, max = Infinity): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < min || value > max) {
    const lower = min === Number.MIN_VALUE ? "> 0" : `>= ${min}`;
    fail(flag, text, max === Infinity ? `a number ${lower}` : `a number in [${min}, ${max}]`);
  }
  return value;
}

function choice<T extends string>(flag: string, text: string, options: readonly T[]): T {
  if (!(options as readonly string[]).includes(text)) fail(flag, text, `one of ${options.join(", ")}`);
  return text as T;
}

/** Converts one flag's text to its typed value, or throws naming the flag. */
function convert(flag: string, text: string): unknown {
  switch (flag) {
    case "dataset":
      return choice(flag, text, DATASETS);
    case "model":
      return choice(flag, text, MODEL_NAMES);
    case "optimizer":
      return choice(flag, text, ["sgd", "adam", "adamw"] as const);
    case "schedule":
      return choice(flag, text, ["cosine", "none"] as const);
    case "surrogate":
      return choice(flag, text, ["dspike", "sigmoid", "atan"] as const);
    case "preset":
      return choice(flag, text, Object.keys(PRESETS));
    case "augment": {
      const parts = text.split(",").map((s) => s.trim());
      for (const part of parts) choice(flag, part, AUGMENTS);
      if (parts.includes("none") && parts.length > 1) fail(flag, text, "none alone, or a list without none");
      return parts;
    }
    case "sb-places": {
      const places = text.split(",").map((s) => s.trim());
      if (!places.every((s) => /^\d+$/.test(s) && Number(s) >= 1)) {
        fail(flag, text, "comma-separated whole numbers >= 1 (blocks between modules)");
      }
      return places.map(Number);
    }
    case "sb-kernels":
      return text.split(",").map((group) => {
        if (!/^[7531]+$/.test(group.trim())) {
          fail(flag, text, "comma-separated groups of the digits 7, 5, 3, 1");
        }
        return [...group.trim()].map(Number);
      });
    case "T":
    case "batch-size":
    case "epochs":
    case "eval-every":
    case "log-every":
    case "sb-width":
    case "width":
      return integer(flag, text, 1);
    case "depth":
    case "cos-T-max":
    case "warmup-epochs":
    case "workers":
    case "prefetch":
    case "seed":
    case "checkpoint-every":
    case "max-steps":
    case "train-limit":
    case "test-limit":
      return integer(flag, text, 0);
    case "lr":
    case "temperature":
      return real(flag, text, Number.MIN_VALUE);
    case "momentum":
      return real(flag, text, 0, 1);
    case "weight-decay":
    case "alpha":
      return real(flag, text, 0);
    case "lambda":
      return real(flag, text, 0, 1);
    default:
      return text;
  }
}

/** Parses argv into a validated config: preset defaults, then explicit flags. */
export function parseConfig(
  args: string[],
): { config: RunConfig; explicit: Set<keyof RunConfig>; help: boolean } {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [flag, spec] of Object.entries(FLAGS)) options[flag] = { type: spec.type };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (error) {
    throw new Error(`train: ${(error as Error).message}; see --help for the flags`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const presetName = typeof values.preset === "string"
    ? convert("preset", values.preset) as string
    : DEFAULTS.preset;
  const config: RunConfig = { ...DEFAULTS, ...PRESETS[presetName].config, preset: presetName };
  const explicit = new Set<keyof RunConfig>();
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const value = values[flag];
    if (value === undefined) continue;
    (config as unknown as Record<string, unknown>)[spec.key] = spec.type === "boolean"
      ? value
      : convert(flag, value as string);
    explicit.add(spec.key);
  }
  validate(config);
  return { config, explicit, help: values.help === true };
}

/** Checks combinations that single flags cannot. */
export function validate(config: RunConfig): void {
  if (config.dataset !== "mnist" && !config.dataDir) {
    throw new Error(`--data-dir: the ${config.dataset} data set needs its folder (see README, Data sets)`);
  }
  if (config.dataset === "es-imagenet" && 8 % config.T !== 0) {
    fail("T", config.T, "1, 2, 4 or 8 for es-imagenet (T must divide its 8 time bins)");
  }
  if (config.warmupEpochs >= config.epochs && !config.testOnly) {
    fail("warmup-epochs", config.warmupEpochs, `fewer than --epochs (${config.epochs})`);
  }
  if (config.testOnly && !config.resume && !config.initWeights) {
    throw new Error(
      "--test-only: needs weights to evaluate: give --resume <checkpoint> or --init-weights <file>",
    );
  }
  if (config.resume && config.initWeights) {
    throw new Error(
      "--init-weights: cannot be combined with --resume (the checkpoint already holds weights)",
    );
  }
  if (config.sbKernels.length !== 1 && config.sbKernels.length !== config.sbPlaces.length && !config.noSb) {
    fail(
      "sb-kernels",
      config.sbKernels.map((k) => k.join("")).join(","),
      `one group or ${config.sbPlaces.length} (one per --sb-places entry)`,
    );
  }
}

export function helpText(): string {
  const lines = [
    "deno task train [flags]   train a spiking network with Surrogate Module Learning (SML)",
    "",
    "With no flags: a spiking ResNet-18 (narrow) with two surrogate modules on the embedded MNIST digits.",
    "",
  ];
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const value = DEFAULTS[spec.key];
    const shown = Array.isArray(value)
      ? value.map((v) => (Array.isArray(v) ? v.join("") : v)).join(",")
      : value === ""
      ? "-"
      : String(value);
    lines.push(`  --${flag.padEnd(18)} ${spec.help} (default ${spec.type === "boolean" ? "off" : shown})`);
  }
  lines.push("", "Presets set defaults for a data set and model (explicit flags win):");
  for (const [name, preset] of Object.entries(PRESETS)) {
    lines.push(`  ${name.padEnd(22)} ${preset.description}`);
  }
  return lines.join("\n");
}
