/**
 * The run configuration: every option of a training run in one table (its command-line flag, help,
 * kind of value and default), the defaults a pipeline's values replace, and the checks that span
 * options. `RunConfig` and `DEFAULTS` are derived from the table, so adding an option is one entry here;
 * the CLI maps each entry to a flag (src/cli/config.ts). Bad values stop here, before any work.
 */
import { AUGMENT_NAMES, type AugmentName } from "../data/augment/settings.ts";
import { DATASET_NAMES } from "../data/dataset.ts";
import { MODEL_NAMES } from "../models/registry.ts";
import { SURROGATE_NAMES } from "../ops/lif.ts";
import { OPTIMIZER_NAMES } from "../optim/registry.ts";
import {
  Expected,
  kernelGroups,
  namesOf,
  oneOf,
  type OptionKind,
  positions,
  real,
  text,
  toggle,
  wholeNumber,
} from "./option_kinds.ts";

/** One option: its flag (`--flag`), its help line, how its value is read and checked, its default. */
export interface RunOption<T> {
  /** The command line's name for it, without the dashes. */
  readonly flag: string;
  /** One line for --help. */
  readonly help: string;
  /** How its value is read and checked. */
  readonly kind: OptionKind<T>;
  /** The embedded default run's value. */
  readonly default: T;
}

function option<T>(flag: string, kind: OptionKind<T>, defaultValue: T, help: string): RunOption<T> {
  return { flag, help, kind, default: defaultValue };
}

/**
 * Every option, in --help order. The defaults are the embedded default run (and the base every preset
 * overrides): a narrow spiking ResNet-18 (stem width 8, CIFAR stem so 28x28 digits keep their
 * resolution) with two surrogate modules of width 16 after blocks 3 and 6, T = 1, AdamW with the
 * paper's lr and decay over 4 epochs (95.85% test top-1 in about 9 min on 2 cores with an empty shader
 * cache; 5 epochs reach 96.15% in 10 min 51 s). lambda = 0.5: in the PyTorch reference on these digits
 * it reached 94.9% after 3 epochs where the CIFAR value 0.9 reached 93.8%.
 *
 * Its type is inferred on purpose (JSR calls that a slow type, so deno.json's lint leaves out
 * no-slow-types and `deno publish` needs --allow-slow-types): RunConfig is derived from it, so that an
 * option is one entry here; an explicit annotation would be a second list of every option.
 */
export const OPTIONS = {
  /** The pipeline the other values start from (checked against the pipelines by the CLI). */
  preset: option("preset", text, "mnist", "hyperparameter preset"),
  dataset: option("dataset", oneOf(DATASET_NAMES), "mnist", DATASET_NAMES.join("|")),
  dataDir: option("data-dir", text, "", "data set root folder (not needed for mnist)"),
  model: option("model", oneOf(MODEL_NAMES), "resnet18", MODEL_NAMES.join("|")),
  /** ResNet stem width (64 = published) or plain-CNN first width. */
  width: option("width", wholeNumber(1), 8, "ResNet stem width (64 = the published networks)"),
  /** Extra layers of the `plain` network. */
  depth: option("depth", wholeNumber(0), 0, "extra 128-channel layers of the plain network"),
  T: option("T", wholeNumber(1), 1, "time steps (>= 1)"),
  batchSize: option("batch-size", wholeNumber(1), 32, "samples per step"),
  epochs: option("epochs", wholeNumber(1), 4, "training epochs"),
  lr: option("lr", real(Number.MIN_VALUE), 0.01, "base learning rate"),
  optimizer: option("optimizer", oneOf(OPTIMIZER_NAMES), "adamw", OPTIMIZER_NAMES.join("|")),
  momentum: option("momentum", real(0, 1), 0.9, "SGD momentum"),
  weightDecay: option("weight-decay", real(0), 0.02, "weight decay (decoupled for adamw)"),
  schedule: option("schedule", oneOf(["cosine", "none"] as const), "cosine", "cosine|none (per epoch)"),
  cosTMax: option("cos-T-max", wholeNumber(0), 0, "cosine length in epochs (0: --epochs)"),
  warmupEpochs: option("warmup-epochs", wholeNumber(0), 0, "linear warm-up epochs"),
  sbPlaces: option("sb-places", positions, [3, 3], "surrogate module positions, incremental blocks: 3,3"),
  sbKernels: option(
    "sb-kernels",
    kernelGroups,
    [[7, 5, 3]],
    "kernels per module, digits of 7/5/3/1: 753,753",
  ),
  sbWidth: option("sb-width", wholeNumber(1), 16, "surrogate module width k"),
  sbLocal: option("sb-local", toggle, false, "detach the backbone at the modules (no shortcut gradient)"),
  noSb: option("no-sb", toggle, false, "no surrogate modules: plain surrogate-gradient training"),
  temperature: option("temperature", real(Number.MIN_VALUE), 3, "SML distillation temperature"),
  alpha: option("alpha", real(0), 0.5, "SML weight of module cross-entropy"),
  lambda: option("lambda", real(0, 1), 0.5, "SML weight of the soft (KL) part"),
  surrogate: option(
    "surrogate",
    oneOf(SURROGATE_NAMES),
    "dspike",
    `LIF surrogate gradient: ${SURROGATE_NAMES.join("|")}`,
  ),
  augment: option<AugmentName[]>(
    "augment",
    namesOf(AUGMENT_NAMES, "none"),
    ["none"],
    `${AUGMENT_NAMES.join("|")} (comma-separated)`,
  ),
  workers: option("workers", wholeNumber(0), 0, "data loading workers (0: in-process)"),
  prefetch: option("prefetch", wholeNumber(0), 2, "batches prepared ahead"),
  dropLast: option("drop-last", toggle, false, "drop the last partial training batch"),
  seed: option("seed", wholeNumber(0), 0, "seed of initialisation, data order and augmentation"),
  outputDir: option("output-dir", text, "", "run folder (config, metrics, checkpoints, plots)"),
  resume: option("resume", text, "", "checkpoint to continue from (.ckpt)"),
  initWeights: option("init-weights", text, "", "start from reference-named .safetensors"),
  exportWeights: option("export-weights", text, "", "write .safetensors when training ends"),
  testOnly: option("test-only", toggle, false, "evaluate only (with --resume or --init-weights)"),
  f16: option(
    "f16",
    toggle,
    false,
    "mixed precision: f16 convolutions, f32 elsewhere, dynamic loss scaling (needs shader-f16)",
  ),
  evalEvery: option("eval-every", wholeNumber(1), 1, "evaluate every N epochs"),
  logEvery: option("log-every", wholeNumber(1), 25, "read metrics and log every N steps"),
  checkpointEvery: option("checkpoint-every", wholeNumber(0), 0, "also checkpoint every N steps (0: epochs)"),
  maxSteps: option("max-steps", wholeNumber(0), 0, "stop after N steps in total (0: no limit)"),
  /** Limit the training set to this many samples (0: all), for smoke runs. */
  trainLimit: option("train-limit", wholeNumber(0), 0, "use only the first N training samples (0: all)"),
  testLimit: option("test-limit", wholeNumber(0), 0, "use only the first N test samples (0: all)"),
  probe: option("probe", toggle, false, "print the gradient-error probe on one batch and exit"),
  /** Require a data-parallel job (an MPI launcher); without the flag a launcher is still detected. */
  distributed: option(
    "distributed",
    toggle,
    false,
    "data-parallel over MPI ranks (mpirun/srun); an error without a launcher",
  ),
  /** SyncBatchNorm; a single process (a world of one) already normalises over the whole batch. */
  syncBn: option(
    "sync-bn",
    toggle,
    false,
    "data-parallel: batch-norm statistics over all ranks' batches (no effect in one process)",
  ),
};

/** Every value of a run, one per entry of OPTIONS. */
export type RunConfig = { -readonly [K in keyof typeof OPTIONS]: (typeof OPTIONS)[K]["default"] };

/** The embedded default run: every option's default. */
export const DEFAULTS: RunConfig = Object.fromEntries(
  Object.entries(OPTIONS).map(([key, spec]) => [key, structuredClone(spec.default)]),
) as RunConfig;

/** The option's error: `--flag: got <value>, expected <what>`. */
export function optionError(key: keyof RunConfig, value: unknown, expected: string): Error {
  const shown = typeof value === "number" ? String(value) : JSON.stringify(value);
  return new Error(`--${OPTIONS[key].flag}: got ${shown}, expected ${expected}`);
}

/** Reads one option's value (flag text or a script's typed value), or throws naming the option. */
export function readOption<K extends keyof RunConfig>(key: K, value: unknown): RunConfig[K] {
  try {
    return OPTIONS[key].kind.read(value) as RunConfig[K];
  } catch (error) {
    if (error instanceof Expected) throw optionError(key, value, error.expected);
    throw error;
  }
}

/**
 * The configuration a run uses: the defaults, then a pipeline's values, then the caller's (flags or a
 * script's overrides); every given value is read and checked, then the combinations.
 */
export function resolveConfig(...layers: Partial<RunConfig>[]): RunConfig {
  const config = structuredClone(DEFAULTS) as Record<string, unknown>;
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      if (!(key in OPTIONS)) {
        throw new Error(`config: unknown option ${key}; known: ${Object.keys(OPTIONS).join(", ")}`);
      }
      config[key] = readOption(key as keyof RunConfig, value);
    }
  }
  validate(config as RunConfig);
  return config as RunConfig;
}

/** Checks combinations that single options cannot. */
export function validate(config: RunConfig): void {
  if (config.dataset !== "mnist" && !config.dataDir) {
    throw new Error(`--data-dir: the ${config.dataset} data set needs its folder (see README, Data sets)`);
  }
  if (config.dataset === "es-imagenet" && 8 % config.T !== 0) {
    throw optionError("T", config.T, "1, 2, 4 or 8 for es-imagenet (T must divide its 8 time bins)");
  }
  if (config.warmupEpochs >= config.epochs && !config.testOnly) {
    throw optionError("warmupEpochs", config.warmupEpochs, `fewer than --epochs (${config.epochs})`);
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
    throw optionError(
      "sbKernels",
      config.sbKernels.map((k) => k.join("")).join(","),
      `one group or ${config.sbPlaces.length} (one per --sb-places entry)`,
    );
  }
}
