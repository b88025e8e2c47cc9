/**
 * Your own event data through the event-frame encoding into SML training, by swapping the source stage of
 * a ready pipeline. The toy task: a bar sweeps across a 16x16 event sensor, vertical and moving right, or
 * horizontal and moving down, seen as ON or OFF events (4 classes), among random noise events. Each
 * sample's events (x, y, polarity in time order) are integrated into T frames of event counts per
 * polarity, the encoding CIFAR10-DVS uses, and a small plain spiking CNN with one surrogate module learns
 * the classes. Run: deno run -A examples/event_stream.ts [run folder]
 */
import {
  DataLoader,
  type Dataset,
  integrateFrames,
  mnistPlain,
  Rng,
  run,
  type Sample,
  withConfig,
  withStages,
} from "../mod.ts";

const SIDE = 16;
const T = 4;
const CLASSES = ["vertical ON", "horizontal ON", "vertical OFF", "horizontal OFF"];

/** One sample's events in time order: a bar sweeping the sensor plus 10% noise. */
function sweep(label: number, rng: Rng): { x: number[]; y: number[]; p: number[] } {
  const vertical = label % 2 === 0;
  const polarity = label < 2 ? 1 : 0;
  const events = { x: [] as number[], y: [] as number[], p: [] as number[] };
  const start = rng.intInclusive(0, 3);
  const width = rng.intInclusive(1, 2);
  for (let position = start; position < SIDE; position++) {
    for (let along = 0; along < SIDE; along++) {
      for (let w = 0; w < width && position + w < SIDE; w++) {
        if (rng.chance(0.3)) continue;
        events.x.push(vertical ? position + w : along);
        events.y.push(vertical ? along : position + w);
        events.p.push(polarity);
      }
      if (rng.chance(0.1)) {
        events.x.push(rng.intInclusive(0, SIDE - 1));
        events.y.push(rng.intInclusive(0, SIDE - 1));
        events.p.push(rng.intInclusive(0, 1));
      }
    }
  }
  return events;
}

/** A data set of `length` event streams, drawn from `seed` (so train and test differ), as T frames each. */
function toyEvents(length: number, seed: number): Dataset {
  return {
    name: "toy-events",
    length,
    numClasses: CLASSES.length,
    classNames: CLASSES,
    sampleShape: [T, 2, SIDE, SIDE],
    get(index: number): Sample {
      const label = index % CLASSES.length;
      const { x, y, p } = sweep(label, Rng.seeded(seed, index, 0));
      return { data: integrateFrames(x, y, p, x.length, T, SIDE, SIDE, `toy sample ${index}`), label };
    },
  };
}

const epochLosses: number[] = [];
// The paper's plain-CNN pipeline, sized down, with the source swapped for the toy events and an
// observer that keeps each epoch's training loss.
const pipeline = withStages(
  withConfig(mnistPlain, { depth: 0, width: 8, sbPlaces: [1], sbWidth: 16, T }),
  {
    source: (config) => ({
      train: new DataLoader(toyEvents(128, 1), {
        batchSize: config.batchSize,
        seed: config.seed,
        train: true,
      }),
      test: new DataLoader(toyEvents(64, 2), {
        batchSize: config.batchSize,
        seed: config.seed,
        train: false,
      }),
      inChannels: 2,
    }),
    observers: () => [{ epochEnd: (record) => epochLosses.push(record.train.loss) }],
  },
);

const outputDir = Deno.args[0] ?? await Deno.makeTempDir({ prefix: "event_stream_" });
const result = await run(pipeline, { epochs: 4, batchSize: 16, lr: 0.01, logEvery: 4, outputDir });
if (result.kind !== "train") throw new Error("expected a training run");
const accuracy = result.summary.last?.test?.top1[0] ?? 0;
console.log(JSON.stringify({ epochLosses, testTop1: accuracy, chance: 100 / CLASSES.length }));
