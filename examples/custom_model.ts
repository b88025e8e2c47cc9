/**
 * Your own spiking network, with SML surrogate modules attached at named points, trained by swapping the
 * model stage (and the source) of a ready pipeline. The toy task: 1x12x12 images whose bright 4x4 patch
 * lies in one of the four quadrants (4 classes), with noise. Run: deno run -A examples/custom_model.ts
 */
import {
  adaptiveAvgPool2d,
  BatchNorm,
  Conv2d,
  DataLoader,
  type Dataset,
  expandTime,
  flatten,
  type ForwardResult,
  InitRng,
  Lif,
  Linear,
  meanOverTime,
  mnist,
  Module,
  NamedAttachments,
  Rng,
  run,
  type Sample,
  type SpikingModel,
  type Tensor,
  withStages,
} from "../mod.ts";

const SIDE = 12;
const CLASSES = 4;

/** conv3x3 -> BN -> LIF, the unit the network is made of. */
class Spiking extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm;
  readonly lif = new Lif();

  constructor(inChannels: number, outChannels: number, stride: number, seed: number, name: string) {
    super();
    this.conv = this.child(
      "conv",
      new Conv2d(inChannels, outChannels, 3, stride, 1, new InitRng(seed, name)),
    );
    this.bn = this.child("bn", new BatchNorm(outChannels));
  }

  forward(x: Tensor, T: number): Tensor {
    return this.lif.afterBatchNorm(this.bn, this.conv.forward(x), T);
  }
}

/** Two spiking layers and a linear read-out; a surrogate module after the layer named "early". */
class TinySnn extends Module implements SpikingModel {
  readonly early: Spiking;
  readonly late: Spiking;
  readonly classifier: Linear;
  readonly modules: NamedAttachments;
  useSurrogates = true;

  constructor(public T: number, numClasses: number, seed: number) {
    super();
    this.early = this.child("early", new Spiking(1, 8, 1, seed, "early"));
    this.late = this.child("late", new Spiking(8, 16, 2, seed, "late"));
    this.classifier = this.child(
      "classifier",
      new Linear(4 * 16, numClasses, new InitRng(seed, "classifier")),
    );
    this.modules = this.child(
      "sb_layers",
      new NamedAttachments({ early: 8 }, { numClasses, width: 16, kernels: [3] }),
    );
  }

  get surrogates() {
    return this.modules.items;
  }
  /** Units the gradient probe may tap: this network has none it names by number. */
  readonly attachments: number[] = [];
  readonly blockCount = 2;

  forward(input: Tensor): ForwardResult {
    const moduleLogits: Tensor[] = [];
    const attach = this.useSurrogates ? this.modules : null;
    let x = expandTime(input, this.T); // (B, C, H, W) repeated over T as (T*B, C, H, W)
    x = this.early.forward(x, this.T);
    attach?.after("early", x, this.T, moduleLogits);
    x = this.late.forward(x, this.T);
    attach?.after("late", x, this.T, moduleLogits);
    // Firing rates of the 6x6 map's four quadrants, read out per time step, averaged over time.
    const logits = meanOverTime(this.classifier.forward(flatten(adaptiveAvgPool2d(x, 2))), this.T);
    return { logits, moduleLogits };
  }
}

/** Images with a bright patch in quadrant `label`, drawn from `seed` per index. */
function quadrants(length: number, seed: number): Dataset {
  return {
    name: "quadrants",
    length,
    numClasses: CLASSES,
    sampleShape: [1, SIDE, SIDE],
    get(index: number): Sample {
      const label = index % CLASSES;
      const rng = Rng.seeded(seed, index, 0);
      const data = Float32Array.from({ length: SIDE * SIDE }, () => 0.3 * rng.float());
      const top = (label >> 1) * (SIDE / 2) + rng.intInclusive(0, 2);
      const left = (label & 1) * (SIDE / 2) + rng.intInclusive(0, 2);
      for (let y = top; y < top + 4; y++) for (let x = left; x < left + 4; x++) data[y * SIDE + x] += 1;
      return { data, label };
    },
  };
}

const stepLosses: number[] = [];
const pipeline = withStages(mnist, {
  source: (config) => ({
    train: new DataLoader(quadrants(128, 1), { batchSize: config.batchSize, seed: config.seed, train: true }),
    test: new DataLoader(quadrants(64, 2), { batchSize: config.batchSize, seed: config.seed, train: false }),
    inChannels: 1,
  }),
  model: (config, data) => ({
    model: new TinySnn(config.T, data.numClasses, config.seed),
    name: "tiny-snn",
    options: { T: config.T, numClasses: data.numClasses },
  }),
  observers: () => [{ step: (record) => stepLosses.push(record.loss) }],
});

const outputDir = Deno.args[0] ?? await Deno.makeTempDir({ prefix: "custom_model_" });
const result = await run(pipeline, { T: 2, epochs: 3, batchSize: 16, lr: 0.01, logEvery: 2, outputDir });
if (result.kind !== "train") throw new Error("expected a training run");
const test = result.summary.last?.test;
console.log(JSON.stringify({
  stepLosses,
  testTop1: test?.top1[0] ?? 0,
  moduleTop1: test?.top1[1] ?? 0,
  chance: 100 / CLASSES,
}));
