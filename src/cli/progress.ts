/**
 * What a run prints: a tqdm-style bar on a terminal (steps, images/s, loss, ETA), plain periodic lines
 * otherwise (CI, log files), and one summary line per epoch with the SNN's and every module's top-1.
 */
import type { ActivityReport } from "../nn/activity.ts";
import type { LoopObserver } from "../pipeline/train_loop.ts";
import type { EpochRecord, StepRecord } from "../pipeline/run_folder.ts";

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function heads(top1: readonly number[]): string {
  return top1.map((v, h) => `${h === 0 ? "snn" : `m${h}`} ${v.toFixed(2)}%`).join("  ");
}

export class ProgressPrinter implements LoopObserver {
  readonly #tty: boolean;
  readonly #encoder = new TextEncoder();
  #epochs: number;
  #epochStart = 0;
  #lineOpen = false;

  constructor(epochs: number, tty = Deno.stdout.isTerminal()) {
    this.#epochs = epochs;
    this.#tty = tty;
  }

  #write(text: string): void {
    Deno.stdout.writeSync(this.#encoder.encode(text));
  }

  #closeLine(): void {
    if (this.#lineOpen) this.#write("\n");
    this.#lineOpen = false;
  }

  epochStart(epoch: number, batches: number, lr: number): void {
    this.#epochStart = performance.now();
    this.#closeLine();
    console.log(`epoch ${epoch + 1}/${this.#epochs}: ${batches} steps, lr ${lr.toPrecision(4)}`);
  }

  step(record: StepRecord, batch: number, batches: number): void {
    const elapsed = (performance.now() - this.#epochStart) / 1000;
    const eta = (elapsed / Math.max(1, batch)) * (batches - batch);
    const stats = `${record.imagesPerSecond.toFixed(1)} img/s  loss ${record.loss.toFixed(4)} ` +
      `(hard ${record.hard.toFixed(4)} soft ${record.soft.toFixed(4)})  train ${heads(record.top1)}`;
    if (this.#tty) {
      const width = 24;
      const filled = Math.round((width * batch) / Math.max(1, batches));
      const bar = "#".repeat(filled) + ".".repeat(width - filled);
      this.#write(`\r\x1b[2K[${bar}] ${batch}/${batches}  ${stats}  ETA ${duration(eta)}`);
      this.#lineOpen = true;
    } else {
      console.log(`  step ${record.step} (${batch}/${batches})  ${stats}  ETA ${duration(eta)}`);
    }
  }

  epochEnd(record: EpochRecord, activity: ActivityReport | null): void {
    this.#closeLine();
    const train = `train loss ${record.train.loss.toFixed(4)} ${heads(record.train.top1)}`;
    const test = record.test ? `  test loss ${record.test.loss.toFixed(4)} ${heads(record.test.top1)}` : "";
    console.log(`epoch ${record.epoch + 1} done in ${duration(record.seconds)}: ${train}${test}`);
    if (activity) {
      const lif = activity.layers.filter((l) => l.kind === "lif");
      const mean = lif.reduce((s, l) => s + l.rate, 0) / Math.max(1, lif.length);
      console.log(
        `  firing rate ${mean.toFixed(4)} (mean of ${lif.length} LIF layers), ` +
          `${(activity.synapticOps / 1e6).toFixed(2)} M SOPs + ${
            (activity.macs / 1e6).toFixed(2)
          } M MACs per sample, ` +
          `energy ${activity.energyMicrojoules.toFixed(2)} uJ`,
      );
    }
  }

  checkpoint(path: string): void {
    if (!this.#tty) console.log(`  checkpoint ${path}`);
  }
}
