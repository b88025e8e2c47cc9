/**
 * `deno task report <run folder>`: redraws the learning curves of a run (finished or not) from its
 * metrics.jsonl and prints the per-epoch table.
 */
import { type EpochRecord, RunFolder } from "../pipeline/run_folder.ts";

function percent(values: readonly number[] | undefined): string {
  return values ? values.map((v) => v.toFixed(2).padStart(6)).join(" ") : "-";
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
