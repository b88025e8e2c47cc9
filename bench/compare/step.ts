/**
 * This project against PyTorch on one training step (forward, SML loss, backward, AdamW lr 0.01 wd 0.02)
 * of the same network on random inputs: images/s of each, their ratio (ours / PyTorch) and peak memory.
 * PyTorch runs bench/compare/torch_step.py (the oracle models of tests/oracle/sml_models.py) in a child
 * process, on CUDA when it has it, else on every CPU core (or --torch-threads of them).
 *
 *   deno run -A bench/compare/step.ts [--config NAME|all] [--steps N] [--warmup N] [--T N] [--batch N]
 *                                     [--sml-overhead] [--python PATH] [--torch-threads N]
 *
 * The default config is "small", the only ResNet cheap enough for a software adapter; the full-width
 * ones take minutes per step there (and minutes of shader compilation in the first). `--T` overrides a
 * config's time steps (e.g. "lif" at T=100 is slow on a CPU), `--batch` its batch size. `--sml-overhead`
 * runs the config's network with and without its surrogate modules, here and in PyTorch, and prints the
 * overheads of each.
 * On a busy CPU-only machine also run `--torch-threads 1`: OpenMP threads that wait for a descheduled
 * sibling can make PyTorch on every core many times slower than on one.
 */
import { parseArgs } from "node:util";
import { describeAdapter, gpu, initGpu } from "../../src/gpu/device.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import { poolStats, resetPeak } from "../../src/gpu/pool.ts";
import { createModel } from "../../src/models/registry.ts";
import { linear } from "../../src/ops/linear.ts";
import { lif } from "../../src/ops/lif.ts";
import type { Optimizer } from "../../src/optim/optimizer.ts";
import { createOptimizer } from "../../src/optim/registry.ts";
import { MetricsAccumulator } from "../../src/pipeline/metrics.ts";
import { type HostBatch, trainStep } from "../../src/pipeline/train_step.ts";
import { Tape } from "../../src/tensor/tape.ts";
import { Tensor } from "../../src/tensor/tensor.ts";

interface ResNetConfig {
  kind: "resnet";
  arch: "resnet18" | "resnet19";
  T: number;
  batch: number;
  imageSize: number;
  inChannels: number;
  /** Stem width (64 is the published network). */
  width: number;
  /** Surrogate module width k. */
  moduleWidth: number;
  /** Two modules at positions [3, 3], or none. */
  modules: boolean;
}

interface LifConfig {
  kind: "lif";
  T: number;
  batch: number;
  neurons: number;
}

type Config = ResNetConfig | LifConfig;

const CONFIGS: Record<string, Config> = {
  headline: {
    kind: "resnet",
    arch: "resnet19",
    T: 2,
    batch: 16,
    imageSize: 32,
    inChannels: 3,
    width: 64,
    moduleWidth: 256,
    modules: true,
  },
  resnet18: {
    kind: "resnet",
    arch: "resnet18",
    T: 4,
    batch: 16,
    imageSize: 32,
    inChannels: 3,
    width: 64,
    moduleWidth: 256,
    modules: true,
  },
  lif: { kind: "lif", T: 100, batch: 16, neurons: 4096 },
  small: {
    kind: "resnet",
    arch: "resnet18",
    T: 1,
    batch: 32,
    imageSize: 28,
    inChannels: 1,
    width: 8,
    moduleWidth: 16,
    modules: true,
  },
};

const SEED = 0;
const LEARNING_RATE = 0.01;
const WEIGHT_DECAY = 0.02;

/** Timing and memory of one side. */
interface SideResult {
  medianSeconds: number;
  peakBytes: number;
  memoryMethod: string;
  device: string;
}

/** Deterministic uniform [0, 1) numbers (mulberry32), so every run sees the same inputs. */
function uniforms(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    values[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  return values;
}

function describeConfig(config: Config): string {
  if (config.kind === "lif") {
    return `Linear(${config.neurons}->${config.neurons})+LIF T=${config.T} batch ${config.batch}`;
  }
  const modules = config.modules ? `2 modules k=${config.moduleWidth}` : "no modules";
  return `${config.arch} width ${config.width} + ${modules}, T=${config.T}, batch ${config.batch}, ` +
    `${config.inChannels}x${config.imageSize}x${config.imageSize}`;
}

/** One of our training steps as a closure, and what to dispose afterwards. */
interface OurStep {
  run(): void;
  dispose(): void;
}

function resnetStep(config: ResNetConfig): OurStep {
  const model = createModel(config.arch, {
    numClasses: 10,
    T: config.T,
    inChannels: config.inChannels,
    width: config.width,
    seed: SEED,
    modules: config.modules ? { positions: [3, 3], width: config.moduleWidth } : undefined,
  });
  const optimizer = createOptimizer("adamw", model.parameters(), {
    lr: LEARNING_RATE,
    weightDecay: WEIGHT_DECAY,
  });
  const metrics = new MetricsAccumulator(config.modules ? 3 : 1);
  const { batch, inChannels, imageSize } = config;
  const labelDraws = uniforms(batch, SEED + 1);
  const hostBatch: HostBatch = {
    data: uniforms(batch * inChannels * imageSize * imageSize, SEED),
    shape: [batch, inChannels, imageSize, imageSize],
    labels: Int32Array.from(labelDraws, (u) => Math.floor(u * 10)),
  };
  return {
    run: () => trainStep({ model, optimizer, loss: {}, metrics }, hostBatch),
    dispose: () => {
      optimizer.dispose();
      model.dispose();
    },
  };
}

function lifStep(config: LifConfig): OurStep {
  const { T, batch, neurons } = config;
  const rows = T * batch;
  // PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  const bound = 1 / Math.sqrt(neurons);
  const spread = (values: Float32Array) => values.map((u) => (2 * u - 1) * bound);
  const weight = Tensor.fromData(spread(uniforms(neurons * neurons, SEED)), [neurons, neurons], {
    name: "weight",
    requiresGrad: true,
  });
  const bias = Tensor.fromData(spread(uniforms(neurons, SEED + 1)), [neurons], {
    name: "bias",
    requiresGrad: true,
  });
  const input = Tensor.fromData(uniforms(rows * neurons, SEED + 2).map((u) => 2 * u), [rows, neurons], {
    name: "input",
  });
  // A fixed upstream gradient stands in for a loss, as `backward(seed)` does on the PyTorch side.
  const seed = Tensor.fromData(uniforms(rows * neurons, SEED + 3).map((u) => 2 * u - 1), [rows, neurons], {
    name: "seed",
  });
  const optimizer: Optimizer = createOptimizer("adamw", [weight, bias], {
    lr: LEARNING_RATE,
    weightDecay: WEIGHT_DECAY,
  });
  return {
    run: () => {
      const tape = new Tape();
      try {
        const spikes = tape.run(() => lif(linear(input, weight, bias), { T }));
        tape.backward(spikes, seed);
        optimizer.step();
      } finally {
        optimizer.zeroGrad();
        tape.dispose();
      }
    },
    dispose: () => {
      optimizer.dispose();
      for (const tensor of [weight, bias, input, seed]) tensor.dispose();
    },
  };
}

/** Our side: warm-up steps (the first compiles every shader), then the median of `steps` timed steps. */
async function measureOurs(config: Config, steps: number, warmup: number): Promise<SideResult> {
  const step = config.kind === "lif" ? lifStep(config) : resnetStep(config);
  try {
    for (let i = 0; i < warmup; i++) {
      step.run();
      await synchronize();
    }
    const times: number[] = [];
    let peakBytes = 0;
    for (let i = 0; i < steps; i++) {
      resetPeak();
      const start = performance.now();
      step.run();
      await synchronize();
      times.push((performance.now() - start) / 1000);
      peakBytes = Math.max(peakBytes, poolStats().peakBytesInUse);
    }
    return {
      medianSeconds: median(times),
      peakBytes,
      memoryMethod: "pool peakBytesInUse (bytes of live tensors, parameters and optimizer state included)",
      device: describeAdapter(gpu().adapter),
    };
  } finally {
    step.dispose();
  }
}

async function measureTorch(
  config: Config,
  steps: number,
  warmup: number,
  python: string,
  threads: number | undefined,
): Promise<SideResult> {
  const script = new URL("./torch_step.py", import.meta.url).pathname;
  const argument = JSON.stringify({ ...config, steps, warmup, seed: SEED, threads });
  const output = await new Deno.Command(python, {
    args: [script, argument],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr);
    throw new Error(`compare: ${python} ${script} failed (exit ${output.code}):\n${stderr.slice(-2000)}`);
  }
  const line = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line) as SideResult;
  } catch {
    throw new Error(`compare: ${script} printed no JSON result line; its output was:\n${stdout}`);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function megabytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function imagesPerSecond(config: Config, side: SideResult): number {
  return config.batch / side.medianSeconds;
}

function withOverrides(config: Config, T: number | undefined, batch: number | undefined): Config {
  return { ...config, ...(T === undefined ? {} : { T }), ...(batch === undefined ? {} : { batch }) };
}

async function compare(
  name: string,
  config: Config,
  steps: number,
  warmup: number,
  python: string,
  threads: number | undefined,
) {
  console.log(`\n[${name}] ${describeConfig(config)}; ${warmup} warm-up, median of ${steps} steps`);
  const ours = await measureOurs(config, steps, warmup);
  console.log(
    `  ours    ${imagesPerSecond(config, ours).toFixed(2).padStart(10)} images/s  ` +
      `${(ours.medianSeconds * 1000).toFixed(1).padStart(10)} ms/step  peak ${megabytes(ours.peakBytes)}  ` +
      `(${ours.device})`,
  );
  const torch = await measureTorch(config, steps, warmup, python, threads);
  console.log(
    `  pytorch ${imagesPerSecond(config, torch).toFixed(2).padStart(10)} images/s  ` +
      `${(torch.medianSeconds * 1000).toFixed(1).padStart(10)} ms/step  peak ${
        megabytes(torch.peakBytes)
      }  ` +
      `(${torch.device})`,
  );
  const ratio = torch.medianSeconds / ours.medianSeconds;
  console.log(`  ratio ours / pytorch (images/s): ${ratio.toFixed(3)}`);
  console.log(`  memory: ours = ${ours.memoryMethod}; pytorch = ${torch.memoryMethod}`);
  console.log(JSON.stringify({ config: name, ...config, ours, pytorch: torch, ratio }));
}

async function smlOverhead(
  name: string,
  config: Config,
  steps: number,
  warmup: number,
  python: string,
  threads: number | undefined,
) {
  if (config.kind !== "resnet") {
    console.log(`\n[${name}] SML overhead: skipped, this config has no surrogate modules`);
    return;
  }
  console.log(`\n[${name}] SML overhead: ${describeConfig(config)} against the same network without modules`);
  const percent = (a: number, b: number) => {
    const change = 100 * (a / b - 1);
    return `${change >= 0 ? "+" : ""}${change.toFixed(1)}%`;
  };
  const report = (side: string, withModules: SideResult, plain: SideResult) => {
    const line = (what: string, result: SideResult) =>
      `  ${side} ${what} ${(result.medianSeconds * 1000).toFixed(1)} ms/step, peak ${
        megabytes(result.peakBytes)
      }`;
    console.log(line("without modules", plain));
    console.log(line("with modules   ", withModules));
    console.log(
      `  ${side} overhead: time ${percent(withModules.medianSeconds, plain.medianSeconds)}, memory ${
        percent(withModules.peakBytes, plain.peakBytes)
      }`,
    );
  };
  const ours = {
    withModules: await measureOurs({ ...config, modules: true }, steps, warmup),
    plain: await measureOurs({ ...config, modules: false }, steps, warmup),
  };
  report("ours   ", ours.withModules, ours.plain);
  // The PyTorch reference on the same networks: how much of the overhead the method itself costs.
  const torch = {
    withModules: await measureTorch({ ...config, modules: true }, steps, warmup, python, threads),
    plain: await measureTorch({ ...config, modules: false }, steps, warmup, python, threads),
  };
  report("pytorch", torch.withModules, torch.plain);
  console.log(JSON.stringify({ config: name, smlOverhead: { ours, pytorch: torch } }));
}

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    config: { type: "string", default: "small" },
    steps: { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    T: { type: "string" },
    batch: { type: "string" },
    "sml-overhead": { type: "boolean", default: false },
    python: { type: "string", default: Deno.env.get("PYTHON") ?? "/usr/bin/python3" },
    "torch-threads": { type: "string" },
  },
});

function positiveInteger(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`compare: --${flag} must be a positive integer`);
  return value;
}

const steps = positiveInteger("steps", flags.steps);
const warmup = positiveInteger("warmup", flags.warmup);
const timeSteps = flags.T === undefined ? undefined : positiveInteger("T", flags.T);
const batchSize = flags.batch === undefined ? undefined : positiveInteger("batch", flags.batch);
const torchThreads = flags["torch-threads"] === undefined
  ? undefined
  : positiveInteger("torch-threads", flags["torch-threads"]);
const names = flags.config === "all" ? Object.keys(CONFIGS) : [flags.config];
for (const name of names) {
  if (!CONFIGS[name]) {
    throw new Error(`compare: unknown config "${name}"; known: ${Object.keys(CONFIGS).join(", ")}, all`);
  }
}

await initGpu();
console.log(`adapter: ${describeAdapter(gpu().adapter)}`);
let failures = 0;
for (const name of names) {
  const config = withOverrides(CONFIGS[name], timeSteps, batchSize);
  try {
    if (flags["sml-overhead"]) await smlOverhead(name, config, steps, warmup, flags.python, torchThreads);
    else await compare(name, config, steps, warmup, flags.python, torchThreads);
  } catch (error) {
    // One config failing (PyTorch missing, memory) should not cost the others' figures in a device run.
    failures++;
    console.error(`\n[${name}] failed: ${error instanceof Error ? error.message : error}`);
  }
}
if (failures > 0) Deno.exit(1);
