/**
 * `deno task train`: flags -> the preset's pipeline with the flags' values -> `run` (training, or
 * evaluation), the same code path a script takes; or the gradient probe. Every input problem stops with a
 * message before any work.
 */
import { synchronize } from "../gpu/kernels.ts";
import { prepareRun, run } from "../pipeline/run.ts";
import { PIPELINES } from "../../pipelines/presets.ts";
import { runProbe } from "./probe.ts";
import { helpText, parseConfig } from "./config.ts";
import { VERSION } from "../pipeline/version.ts";
import { ProgressPrinter } from "./progress.ts";
import { failJob, type Job, joinJob } from "../dist/job.ts";

/** This process's data-parallel job, once joined; an error then stops every rank (see failJob). */
let job = null as Job | null;

export async function main(args: string[]): Promise<number> {
  if (args.includes("--version")) {
    console.log(`spikegpu ${VERSION}`);
    return 0;
  }
  const { config, overrides, help } = parseConfig(args);
  if (help) {
    console.log(helpText());
    return 0;
  }
  const pipeline = PIPELINES[config.preset];
  // Before anything touches WebGPU: joining chooses this rank's GPU.
  job = joinJob(config.distributed);
  if (config.probe) {
    const prepared = await prepareRun(pipeline, overrides, { job });
    try {
      await runProbe(prepared.config, prepared.model, prepared.train);
    } finally {
      prepared.close();
    }
    return 0;
  }
  await run(pipeline, overrides, { observers: [new ProgressPrinter(config.epochs)], job });
  return 0;
}

if (import.meta.main) {
  let code = 1;
  try {
    code = await main(Deno.args);
  } catch (error) {
    if (job && job.communicator.size > 1) await failJob(job, error);
    console.error(`error: ${(error as Error).message}`);
  }
  // Let recorded GPU work finish: wgpu aborts a process that exits while a submission still runs.
  await synchronize().catch(() => {});
  job?.communicator.finalize();
  Deno.exit(code);
}
