/**
 * The collectives a data-parallel run needs, over MPI_COMM_WORLD. `startCommunicator` decides whether
 * this process is one rank of a launched job (launch.ts) and only then loads MPI.
 */
import { detectLaunch, type Launch } from "./launch.ts";
import { Mpi } from "./mpi.ts";

/** The job's collectives over MPI_COMM_WORLD, as one rank sees them. */
export interface Communicator {
  /** This process's rank, 0 .. size - 1. */
  readonly rank: number;
  /** Ranks in the job. */
  readonly size: number;
  /** Rank among this node's processes: the GPU this rank should use. */
  readonly localRank: number;
  /** "MPICH Version: 4.0.2 ... (libmpich.so.12)". */
  readonly description: string;
  /** In-place element-wise sum (or max) over all ranks. */
  allreduce(data: Float32Array | Float64Array, op?: "sum" | "max"): void;
  /** Overwrites `data` with rank `root`'s. */
  broadcast(data: Uint8Array, root?: number): void;
  /** Every rank's `data` (same length on all ranks), in rank order. */
  allgather(data: Uint8Array): Uint8Array;
  /** Returns once every rank has called it. */
  barrier(): void;
  /** Ends the whole job with `code` (the launcher kills the other ranks). */
  abort(code: number): never;
  /** Leaves the job (MPI_Finalize); the last call on it. */
  finalize(): void;
}

/**
 * The job's communicator when a launcher started this process, else null (MPI is not loaded). With
 * `required` (--distributed), no launcher is an error.
 */
export function startCommunicator(required: boolean): Communicator | null {
  const launch = detectLaunch();
  if (!launch) {
    if (!required) return null;
    throw new Error(
      "--distributed: no MPI launcher started this process (none of PMI_RANK/PMI_SIZE, OMPI_COMM_WORLD_SIZE, " +
        "PMIX_RANK, SLURM_STEP_ID is set); expected e.g. `mpirun -np 2 deno task train --distributed ...` " +
        "or `srun --ntasks 2 deno task train ...`",
    );
  }
  let mpi: Mpi;
  try {
    mpi = Mpi.load();
  } catch (error) {
    throw new Error(`${launchName(launch)}: ${(error as Error).message}`);
  }
  if (launch.size > 0 && launch.size !== mpi.size) {
    throw new Error(
      `${
        launchName(launch)
      } announces ${launch.size} processes but ${mpi.path} sees a world of ${mpi.size}: ` +
        "the launcher and the MPI library do not belong together (e.g. Open MPI's mpirun with MPICH's " +
        "library); use the mpirun of the library, or set SPIKEGPU_MPI_LIB to the matching library",
    );
  }
  return {
    rank: mpi.rank,
    size: mpi.size,
    localRank: mpi.localRank,
    description: `${mpi.version} (${mpi.path})`,
    allreduce: (data, op) => mpi.allreduce(data, op),
    broadcast: (data, root) => mpi.broadcast(data, root),
    allgather: (data) => mpi.allgather(data),
    barrier: () => mpi.barrier(),
    abort: (code) => mpi.abort(code),
    finalize: () => mpi.finalize(),
  };
}

function launchName(launch: Launch): string {
  return `distributed run (launcher ${launch.launcher})`;
}
