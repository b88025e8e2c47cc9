/**
 * Whether an MPI launcher started this process, read from the environment it sets, before MPI is loaded:
 * a process without one runs exactly as a single process (MPI is never loaded).
 */

/** A launcher's footprint in the environment. */
export interface Launch {
  /** Which launcher: "hydra" (MPICH, Intel MPI), "open-mpi", "pmix" or "slurm". */
  launcher: string;
  /** The world size the launcher announces (MPI's own value is the one used). */
  size: number;
  /** The launcher's local rank, when it sets one (MPI's node communicator gives the one used). */
  localRank: number | null;
}

/** Environment variables that carry a launcher's local rank, in the order they are trusted. */
export const LOCAL_RANK_VARIABLES = [
  "MPI_LOCALRANKID",
  "OMPI_COMM_WORLD_LOCAL_RANK",
  "PMIX_LOCAL_RANK",
  "SLURM_LOCALID",
] as const;

/**
 * The launcher that started this process, or null. MPICH's hydra (and Intel MPI) set PMI_RANK/PMI_SIZE,
 * Open MPI's mpirun OMPI_COMM_WORLD_SIZE, PMIx launchers PMIX_RANK, and Slurm's srun SLURM_STEP_ID with
 * SLURM_STEP_NUM_TASKS (a batch script itself has SLURM_NTASKS but no step of its own, so it counts as
 * no launcher: the script's `srun` starts the ranks).
 */
export function detectLaunch(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Launch | null {
  const localRank = (() => {
    for (const name of LOCAL_RANK_VARIABLES) {
      const value = env(name);
      if (value !== undefined && /^\d+$/.test(value)) return Number(value);
    }
    return null;
  })();
  const count = (name: string) => {
    const value = env(name);
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : null;
  };
  const hydra = count("PMI_SIZE");
  if (env("PMI_RANK") !== undefined && hydra !== null) return { launcher: "hydra", size: hydra, localRank };
  const openMpi = count("OMPI_COMM_WORLD_SIZE");
  if (openMpi !== null) return { launcher: "open-mpi", size: openMpi, localRank };
  if (env("PMIX_RANK") !== undefined) return { launcher: "pmix", size: count("PMIX_SIZE") ?? 0, localRank };
  const slurm = count("SLURM_STEP_NUM_TASKS");
  if (env("SLURM_STEP_ID") !== undefined && slurm !== null && env("SLURM_STEP_ID") !== "batch") {
    return { launcher: "slurm", size: slurm, localRank };
  }
  return null;
}
