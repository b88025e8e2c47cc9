/**
 * Joining and leaving a data-parallel job from a command: the communicator (only when a launcher
 * started this process), this rank's GPU chosen before WebGPU starts, and the job-wide stop on error.
 */
import { type Communicator, startCommunicator } from "./communicator.ts";
import { type GpuSelection, selectGpu } from "./gpu_select.ts";

export interface Job {
  communicator: Communicator;
  gpu: GpuSelection;
}

/**
 * The job this process is a rank of, or null for a single-process run (MPI not loaded). Call before the
 * first WebGPU call: it chooses this rank's GPU. `required`: --distributed was asked for.
 */
export function joinJob(required: boolean): Job | null {
  const communicator = startCommunicator(required);
  if (!communicator) return null;
  return { communicator, gpu: selectGpu(communicator.localRank) };
}

/** "rank 1 of 4" */
export function rankName(job: Job): string {
  return `rank ${job.communicator.rank} of ${job.communicator.size}`;
}

/**
 * Ends the whole job after an error on this rank: the message names the rank, and MPI_Abort makes the
 * launcher stop every other rank (instead of leaving them waiting in their next collective).
 */
export function failJob(job: Job, error: unknown): never {
  console.error(`error: ${rankName(job)}: ${(error as Error).message ?? String(error)}`);
  return job.communicator.abort(1);
}
