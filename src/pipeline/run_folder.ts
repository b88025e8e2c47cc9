/**
 * The run folder users get: config.json, metrics.jsonl (one record per log step and per epoch),
 * checkpoints/{latest,best}.ckpt and learning curves as SVG, re-rendered each epoch and by `report`.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import { heatmap, lineChart, type Series } from "./plots.ts";

/** Loss and accuracy of the SNN and its modules. */
export interface HeadMetrics {
  /** Mean total loss. */
  loss: number;
  /** Mean hard (cross-entropy) part. */
  hard: number;
  /** Mean soft (mutual KL) part. */
  soft: number;
  /** Index 0: the SNN; then each surrogate module. Percentages. */
  top1: number[];
  /** Top-5 accuracy, as top1. */
  top5: number[];
}

/** A metrics.jsonl record of a logged training step. */
export interface StepRecord extends HeadMetrics {
  /** Record kind. */
  type: "step";
  /** Epoch (0-based). */
  epoch: number;
  /** Optimizer steps so far. */
  step: number;
  /** Learning rate of the step. */
  lr: number;
  /** Training throughput since the last log step. */
  imagesPerSecond: number;
  /**
   * Mean firing rate per LIF layer, by its module path (`layer1.0.lif1`), recorded during the logged step
   * itself. Runs before the module-path names wrote `lif#<call index>`.
   */
  firingRates: Record<string, number>;
  /** Under mixed precision: the loss scale after this step, and the updates skipped so far (overflow). */
  lossScale?: number;
  /** Updates skipped so far for a non-finite gradient. */
  skippedSteps?: number;
}

/** A metrics.jsonl record of a finished epoch. */
export interface EpochRecord {
  /** Record kind. */
  type: "epoch";
  /** Epoch (0-based). */
  epoch: number;
  /** Optimizer steps so far. */
  step: number;
  /** Learning rate of the epoch. */
  lr: number;
  /** Wall time of the epoch. */
  seconds: number;
  /** Means over the epoch's training steps. */
  train: HeadMetrics;
  /** Evaluation on the test split; null when it did not run. */
  test: HeadMetrics | null;
  /** Test firing rate per LIF layer, named as in StepRecord; empty without a test set. */
  firingRates: Record<string, number>;
  /** Per test sample, all time steps, SNN only. */
  synapticOps?: number;
  /** Multiply-accumulates per test sample, all time steps. */
  macs?: number;
  /** Energy estimate per test sample. */
  energyMicrojoules?: number;
}

/** Why a run stopped early: written to metrics.jsonl and, alone, to diagnostic.json. */
export interface FaultRecord {
  /** Record kind. */
  type: "fault";
  /** What went wrong. */
  kind: "non-finite";
  /** The step that produced the first non-finite value (for a loss alone: the step it was noticed). */
  step: number;
  /** Epoch (0-based). */
  epoch: number;
  /** Means over the steps read when it was found; "NaN" or "Infinity" where JSON has no number. */
  loss: Record<"loss" | "hard" | "soft", number | string>;
  /** The state-dict key (or optimizer slot) that first went non-finite; null when only the loss did. */
  parameter: string | null;
  /** Whether the parameter's gradient or its value went non-finite. */
  part: "gradient" | "value" | null;
  /** The last good checkpoint, left as it was; null when none was written yet. */
  checkpoint: string | null;
  /** The message the run stopped with. */
  message: string;
}

/** Any metrics.jsonl record. */
export type MetricsRecord = StepRecord | EpochRecord | FaultRecord;

/** A run's folder: config.json, metrics.jsonl, checkpoints/ and plots/. */
export class RunFolder {
  /** The folder at `path` (not created). */
  constructor(readonly path: string) {}

  /** Creates the folder and its subfolders at `path`. */
  static async create(path: string): Promise<RunFolder> {
    try {
      await Deno.mkdir(join(path, "checkpoints"), { recursive: true });
      await Deno.mkdir(join(path, "plots"), { recursive: true });
      // Fail now, not after an epoch of training, if the folder is not writable.
      const probe = join(path, ".write-test");
      await Deno.writeTextFile(probe, "");
      await Deno.remove(probe);
    } catch (error) {
      throw new Error(
        `--output-dir: cannot write the run folder ${path} (${(error as Error).message}); ` +
          "expected a folder path this process can create and write",
      );
    }
    return new RunFolder(path);
  }

  /** metrics.jsonl. */
  get metricsPath(): string {
    return join(this.path, "metrics.jsonl");
  }

  /** checkpoints/latest.ckpt or checkpoints/best.ckpt. */
  checkpointPath(which: "latest" | "best"): string {
    return join(this.path, "checkpoints", `${which}.ckpt`);
  }

  /** Writes config.json. */
  async writeConfig(config: Record<string, unknown>): Promise<void> {
    await writeFileAtomic(
      join(this.path, "config.json"),
      new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n"),
    );
  }

  /** diagnostic.json, written when a run stops on a fault. */
  get diagnosticPath(): string {
    return join(this.path, "diagnostic.json");
  }

  /** Appends one record to metrics.jsonl. */
  async append(record: MetricsRecord): Promise<void> {
    await Deno.writeTextFile(this.metricsPath, JSON.stringify(record) + "\n", { append: true });
  }

  /** Every record of metrics.jsonl. */
  async readRecords(): Promise<MetricsRecord[]> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.metricsPath);
    } catch (error) {
      throw new Error(`report: cannot read ${this.metricsPath}: ${(error as Error).message}`);
    }
    return text.split("\n").filter((line) => line.trim()).map((line, i) => {
      try {
        return JSON.parse(line) as MetricsRecord;
      } catch {
        throw new Error(`report: ${this.metricsPath} line ${i + 1} is not JSON`);
      }
    });
  }

  /** Renders loss and accuracy curves and the firing-rate heatmap from the records; returns the files written. */
  async writePlots(records: readonly MetricsRecord[]): Promise<string[]> {
    const steps = records.filter((r): r is StepRecord => r.type === "step");
    const epochs = records.filter((r): r is EpochRecord => r.type === "epoch");
    const heads = Math.max(1, ...steps.map((r) => r.top1.length), ...epochs.map((r) => r.train.top1.length));
    const headName = (h: number) => (h === 0 ? "SNN" : `module ${h}`);
    const charts: [string, string][] = [];
    const loss: Series[] = [
      { name: "train loss", points: steps.map((r) => [r.step, r.loss]) },
      { name: "train hard", points: steps.map((r) => [r.step, r.hard]) },
      { name: "train soft", points: steps.map((r) => [r.step, r.soft]) },
      {
        name: "test loss",
        points: epochs.flatMap((r) => (r.test ? [[r.step, r.test.loss] as [number, number]] : [])),
      },
    ];
    charts.push(["loss.svg", lineChart(loss, { title: "Loss", xLabel: "step", yLabel: "loss" })]);
    const accuracy: Series[] = [];
    for (let h = 0; h < heads; h++) {
      accuracy.push({
        name: `test top-1 ${headName(h)}`,
        points: epochs.flatMap((r) => (r.test ? [[r.epoch + 1, r.test.top1[h]] as [number, number]] : [])),
      });
    }
    accuracy.push({ name: "train top-1 SNN", points: epochs.map((r) => [r.epoch + 1, r.train.top1[0]]) });
    charts.push([
      "accuracy.svg",
      lineChart(accuracy, { title: "Top-1 accuracy", xLabel: "epoch", yLabel: "%" }),
    ]);
    // Layers in call order (the order a record lists them), one heatmap row each.
    const layers = [...new Set(epochs.flatMap((r) => Object.keys(r.firingRates)))];
    const rated = epochs.filter((r) => Object.keys(r.firingRates).length > 0);
    charts.push([
      "firing_rates.svg",
      heatmap(
        layers,
        rated.map((r) => r.epoch + 1),
        layers.map((layer) => rated.map((r) => r.firingRates[layer] ?? NaN)),
        {
          title: "Test firing rate per LIF layer",
          xLabel: "epoch",
          valueLabel: "spikes per neuron per step",
        },
      ),
    ]);
    const written: string[] = [];
    for (const [name, svg] of charts) {
      const path = join(this.path, "plots", name);
      await writeFileAtomic(path, new TextEncoder().encode(svg));
      written.push(path);
    }
    return written;
  }
}
