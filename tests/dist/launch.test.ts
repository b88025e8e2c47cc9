/**
 * Launcher detection, DistributedSampler-equivalent shards, and the errors of a run that asks for
 * --distributed without a launcher or without an MPI library (no mpirun needed).
 */
import assert from "node:assert/strict";
import { shardOrder } from "../../src/data/loader.ts";
import { detectLaunch } from "../../src/dist/launch.ts";
import { displayControllers } from "../../src/dist/gpu_select.ts";
import { TINY_CLI } from "../helpers.ts";

const LAUNCH_VARIABLES = /^(PMI_|PMIX_|OMPI_|SLURM_|MPI_LOCALRANKID|HYDRA_)/;

Deno.test("detectLaunch: hydra, Open MPI, Slurm steps; a plain shell or a Slurm batch script is no launcher", () => {
  const from = (vars: Record<string, string>) => detectLaunch((name) => vars[name]);
  assert.equal(from({}), null);
  assert.deepEqual(from({ PMI_RANK: "1", PMI_SIZE: "4", MPI_LOCALRANKID: "1" }), {
    launcher: "hydra",
    size: 4,
    localRank: 1,
  });
  assert.deepEqual(from({ OMPI_COMM_WORLD_SIZE: "8", OMPI_COMM_WORLD_LOCAL_RANK: "3" }), {
    launcher: "open-mpi",
    size: 8,
    localRank: 3,
  });
  assert.deepEqual(from({ SLURM_STEP_ID: "0", SLURM_STEP_NUM_TASKS: "16", SLURM_LOCALID: "2" }), {
    launcher: "slurm",
    size: 16,
    localRank: 2,
  });
  // sbatch's own shell: SLURM_NTASKS and SLURM_PROCID, but no step started by srun.
  assert.equal(from({ SLURM_NTASKS: "16", SLURM_PROCID: "0", SLURM_JOB_ID: "7" }), null);
});

Deno.test("shardOrder: DistributedSampler's split; padded shards are equal, unpadded ones cover each sample once", () => {
  const order = Int32Array.from([9, 4, 7, 1, 0, 8, 2, 6, 3, 5, 10]);
  // torch: indices += indices[:pad]; indices[rank:total:world].
  const padded = [0, 1, 2].map((rank) => Array.from(shardOrder(order, { rank, size: 3, pad: true })));
  assert.deepEqual(padded, [[9, 1, 2, 5], [4, 0, 6, 10], [7, 8, 3, 9]]);
  const unpadded = [0, 1, 2].map((rank) => Array.from(shardOrder(order, { rank, size: 3, pad: false })));
  assert.deepEqual(unpadded, [[9, 1, 2, 5], [4, 0, 6, 10], [7, 8, 3]]);
  assert.deepEqual(unpadded.flat().sort((a, b) => a - b), Array.from({ length: 11 }, (_, i) => i));
  // Fewer samples than ranks: padding repeats the order.
  assert.deepEqual(Array.from(shardOrder(Int32Array.of(5, 6), { rank: 3, size: 5, pad: true })), [6]);
  assert.throws(() => shardOrder(order, { rank: 3, size: 3, pad: true }), /rank 3 of 3/);
});

/** `deno task train` with the launcher variables of this environment removed, plus `env`. */
async function train(args: string[], env: Record<string, string> = {}) {
  const clean: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (!LAUNCH_VARIABLES.test(name)) clean[name] = value;
  }
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../src/cli/train.ts", import.meta.url).pathname, ...TINY_CLI, ...args],
    env: { ...clean, ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    text: new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr),
  };
}

Deno.test("--distributed without a launcher: a clear error naming the launchers, exit 1, no run folder", async () => {
  const dir = await Deno.makeTempDir();
  const { code, text } = await train(["--distributed", "--output-dir", `${dir}/run`]);
  assert.equal(code, 1, text);
  assert.match(text, /--distributed: no MPI launcher started this process/);
  assert.match(text, /mpirun -np 2/);
  assert.equal(await Deno.stat(`${dir}/run`).then(() => true, () => false), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a launcher without an MPI library: a clear error naming what was looked for, exit 1", async () => {
  const { code, text } = await train([], {
    PMI_RANK: "0",
    PMI_SIZE: "1",
    SPIKEGPU_MPI_LIB: "/nonexistent/libmpich.so.12",
  });
  assert.equal(code, 1, text);
  assert.match(
    text,
    /launcher hydra.*no MPI library could be loaded from SPIKEGPU_MPI_LIB; tried \/nonexistent\/libmpich\.so\.12/,
  );
  assert.match(text, /apt-get install mpich libmpich-dev/);
});

Deno.test("displayControllers: GPUs in PCI address order, a management controller's VGA chip left out", async () => {
  const root = await Deno.makeTempDir();
  const devices: [string, string, string][] = [
    ["0000:c1:00.0", "0x030200", "0x10de"],
    ["0000:02:00.0", "0x030000", "0x1a03"], // ASPEED BMC VGA
    ["0000:41:00.0", "0x030200", "0x10de"],
    ["0000:00:1f.3", "0x040300", "0x8086"], // audio
    ["0000:81:00.0", "0x038000", "0x1002"],
  ];
  for (const [address, pciClass, vendor] of devices) {
    await Deno.mkdir(`${root}/${address}`);
    await Deno.writeTextFile(`${root}/${address}/class`, `${pciClass}\n`);
    await Deno.writeTextFile(`${root}/${address}/vendor`, `${vendor}\n`);
  }
  assert.deepEqual(displayControllers(root), ["0000:41:00.0", "0000:81:00.0", "0000:c1:00.0"]);
  assert.deepEqual(displayControllers(`${root}/missing`), []);
  await Deno.remove(root, { recursive: true });
});
