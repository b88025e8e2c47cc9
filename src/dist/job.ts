/**
 * Joining and leaving a data-parallel job from a command: the communicator (only when a launcher
 * started this process), this rank's GPU chosen before WebGPU starts, and the job-wide stop on error.
 */
import { type Communicator, startCommunicator } from "./communicator.ts";
import { type GpuSelection, selectGpu } from "./gpu_select.ts";

/** This process's place in a data-parallel job. */
export interface Job {
  /** The job's collectives. */
  communicator: Communicator;
  /** How this rank's GPU was chosen. */
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
 * "rank 0: pid 28814 on node1, rank 1: pid 28815 on node1": what rank 0 prints at start, so that a
 * launcher's report of a dead process (MPICH's hydra names its PID and host) names the rank too.
 */
export function describeRanks(job: Job): string {
  const { communicator } = job;
  const host = new Uint8Array(68);
  new DataView(host.buffer).setUint32(0, Deno.pid, true);
  host.set(new TextEncoder().encode(Deno.hostname()).subarray(0, 64), 4);
  const all = communicator.allgather(host);
  return Array.from({ length: communicator.size }, (_, rank) => {
    const entry = all.subarray(rank * 68, rank * 68 + 68);
    const pid = new DataView(entry.buffer, entry.byteOffset).getUint32(0, true);
    const name = new TextDecoder().decode(entry.subarray(4)).replace(/\0+$/, "");
    return `rank ${rank}: pid ${pid} on ${name}`;
  }).join(", ");
}

/**
 * How long a rank other than 0 waits before aborting: errors that every rank meets at the same step (a
 * non-finite loss, a configuration mismatch) then end the job through rank 0, after it has written
 * its diagnostic, instead of through whichever rank aborted first.
 */
export const ABORT_GRACE_MS = 2000;

/**
 * Ends the whole job after an error on this rank: the message names the rank, and MPI_Abort makes the
 * launcher stop every other rank (instead of leaving them waiting in their next collective).
 */
export async function failJob(job: Job, error: unknown): Promise<never> {
  console.error(`error: ${rankName(job)}: ${(error as Error).message ?? String(error)}`);
  if (job.communicator.rank !== 0) await new Promise((resolve) => setTimeout(resolve, ABORT_GRACE_MS));
  return job.communicator.abort(1);
}
