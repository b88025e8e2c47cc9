/**
 * The run folder users get: config.json, metrics.jsonl (one record per log step and per epoch),
 * checkpoints/{latest,best}.ckpt and learning curves as SVG, re-rendered each epoch and by `report`.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import { heatmap, lineChart, type Series } from "./plots.ts";

export interface HeadMetrics {
  loss: number;
  hard: number;
  soft: number;
  /** Index 0: the SNN; then each surrogate module. Percentages. */
  top1: number[];
  top5: number[];
}

export interface StepRecord extends HeadMetrics {
  type: "step";
  epoch: number;
  step: number;
  lr: number;
  imagesPerSecond: number;
  /**
   * Mean firing rate per LIF layer, by its module path (`layer1.0.lif1`), recorded during the logged step
   * itself. Runs before the module-path names wrote `lif#<call index>`.
   */
  firingRates: Record<string, number>;
  /** Under mixed precision: the loss scale after this step, and the updates skipped so far (overflow). */
  lossScale?: number;
  skippedSteps?: number;
}

export interface EpochRecord {
  type: "epoch";
  epoch: number;
  step: number;
  lr: number;
  seconds: number;
  train: HeadMetrics;
  test: HeadMetrics | null;
  /** Test firing rate per LIF layer, named as in StepRecord; empty without a test set. */
  firingRates: Record<string, number>;
  /** Per test sample, all time steps, SNN only. */
  synapticOps?: number;
  macs?: number;
  energyMicrojoules?: number;
}

/** Why a run stopped early: written to metrics.jsonl and, alone, to diagnostic.json. */
export interface FaultRecord {
  type: "fault";
  kind: "non-finite";
  /** The step that produced the first non-finite value (for a loss alone: the step it was noticed). */
  step: number;
  epoch: number;
  /** Means over the steps read when it was found; "NaN" or "Infinity" where JSON has no number. */
  loss: Record<"loss" | "hard" | "soft", number | string>;
  /** The state-dict key (or optimizer slot) that first went non-finite; null when only the loss did. */
  parameter: string | null;
  part: "gradient" | "value" | null;
  /** The last good checkpoint, left as it was; null when none was written yet. */
  checkpoint: string | null;
  message: string;
}

export type MetricsRecord = StepRecord | EpochRecord | FaultRecord;

export class RunFolder {
  constructor(readonly path: string) {}

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

  get metricsPath(): string {
    return join(this.path, "metrics.jsonl");
  }

  checkpointPath(which: "latest" | "best"): string {
    return join(this.path, "checkpoints", `${which}.ckpt`);
  }

  async writeConfig(config: Record<string, unknown>): Promise<void> {
    await writeFileAtomic(
      join(this.path, "config.json"),
      new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n"),
    );
  }

  get diagnosticPath(): string {
    return join(this.path, "diagnostic.json");
  }

  async append(record: MetricsRecord): Promise<void> {
    await Deno.writeTextFile(this.metricsPath, JSON.stringify(record) + "\n", { append: true });
  }

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
