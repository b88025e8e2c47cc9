/**
 * `deno task report <run folder>`: redraws the learning curves of a run (finished or not) from its
 * metrics.jsonl and prints the per-epoch table and the last epochs' firing rate of every LIF layer.
 */
import { type EpochRecord, RunFolder } from "../pipeline/run_folder.ts";

/** How many of the last epochs the firing-rate table shows. */
const RATE_EPOCHS = 6;

function percent(values: readonly number[] | undefined): string {
  return values ? values.map((v) => v.toFixed(2).padStart(6)).join(" ") : "-";
}

/** Test firing rate per LIF layer (module path) over the last epochs; old runs name layers `lif#<n>`. */
function firingRateTable(epochs: readonly EpochRecord[]): string[] {
  const rated = epochs.filter((r) => Object.keys(r.firingRates).length > 0).slice(-RATE_EPOCHS);
  if (rated.length === 0) return [];
  const layers = [...new Set(rated.flatMap((r) => Object.keys(r.firingRates)))];
  const width = Math.max(5, ...layers.map((name) => name.length));
  const lines = [
    `test firing rate per LIF layer (spikes per neuron per step)`,
    `${"layer".padEnd(width)}  ${rated.map((r) => `epoch ${r.epoch + 1}`.padStart(9)).join(" ")}`,
  ];
  for (const layer of layers) {
    const rates = rated.map((r) => (r.firingRates[layer]?.toFixed(4) ?? "-").padStart(9));
    lines.push(`${layer.padEnd(width)}  ${rates.join(" ")}`);
  }
  return lines;
}

export async function report(folderPath: string): Promise<string> {
  const folder = new RunFolder(folderPath);
  const records = await folder.readRecords();
  const plots = await folder.writePlots(records);
  const epochs = records.filter((r): r is EpochRecord => r.type === "epoch");
  const lines = [`run ${folderPath}: ${records.length} records, ${epochs.length} epochs`];
  lines.push("epoch   step   train loss   test loss   test top-1 (SNN, modules...)   energy uJ");
  for (const r of epochs) {
    lines.push(
      `${String(r.epoch + 1).padStart(5)} ${String(r.step).padStart(6)}   ${
        r.train.loss.toFixed(4).padStart(10)
      }   ` +
        `${(r.test?.loss.toFixed(4) ?? "-").padStart(9)}   ${percent(r.test?.top1).padEnd(30)} ` +
        `${r.energyMicrojoules?.toFixed(2) ?? "-"}`,
    );
  }
  lines.push(...firingRateTable(epochs));
  lines.push(...plots.map((p) => `wrote ${p}`));
  return lines.join("\n");
}

if (import.meta.main) {
  const [folder] = Deno.args;
  if (!folder || Deno.args.length !== 1) {
    console.error("usage: deno task report <run folder>");
    Deno.exit(2);
  }
  try {
    console.log(await report(folder));
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
