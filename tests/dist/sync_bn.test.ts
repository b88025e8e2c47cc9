/**
 * --sync-bn under `mpirun -np 2` on the software adapter (LP_NUM_THREADS=1 per rank): one SGD step of
 * 2 ranks x B samples with synchronised batch norms equals 1 process x 2B on the same samples, weights
 * and batch-norm running statistics alike, in a case checked to be well-conditioned (syncbn_worker.ts).
 *
 * Skipped only where `mpirun` is not installed (CI installs MPICH, so it runs there).
 */
import assert from "node:assert/strict";
import { mpirunInstalled } from "./mpirun.ts";
import { BATCH, MARGIN } from "./syncbn_worker.ts";

const MPIRUN = mpirunInstalled("tests/dist/sync_bn.test.ts");

const WORKER = new URL("./syncbn_worker.ts", import.meta.url).pathname;

/** The spacing of float32 values at `v`. */
function ulp(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

Deno.test({
  name: "2 ranks x B with --sync-bn take the SGD step of 1 process x 2B (weights and BN statistics)",
  ignore: !MPIRUN,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const output = await new Deno.Command("mpirun", {
      args: ["-np", "2", Deno.execPath(), "run", "-A", WORKER, dir],
      env: { LP_NUM_THREADS: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, text);
    const [r0, r1] = await Promise.all(
      [0, 1].map(async (r) => JSON.parse(await Deno.readTextFile(`${dir}/rank${r}.json`))),
    );
    await Deno.remove(dir, { recursive: true });
    // Well-conditioned: the same spikes with the threshold MARGIN lower and higher.
    assert.ok(r0.sameSpikesBelow && r0.sameSpikesAbove, `a membrane lies within ${MARGIN} of the threshold`);
    assert.ok((r0.logits as number[]).some((v) => v !== r0.logits[0]), "the logits are not all equal");
    assert.equal(r0.samples, 2 * BATCH);
    const reference = r0.reference as Record<string, number[]>;
    const names = Object.keys(reference);
    assert.ok(names.some((n) => n.endsWith("running_var")) && names.some((n) => n.endsWith("weight")));
    let worst = 0;
    let worstName = "";
    for (const [name, expected] of Object.entries(reference)) {
      const scale = Math.max(...expected.map(Math.abs));
      for (const result of [r0, r1]) {
        const actual = result.state[name] as number[];
        assert.equal(actual.length, expected.length, name);
        let relative = 0;
        actual.forEach((v, i) => {
          const error = Math.max(Math.abs(v - expected[i]) - 2 * ulp(expected[i]), 0);
          relative = Math.max(relative, error / scale);
        });
        assert.ok(relative <= 1e-4, `${name}: relative error ${relative} beyond 2 ulps`);
        if (relative > worst) [worst, worstName] = [relative, name];
      }
    }
    // Both ranks hold the same weights and statistics.
    assert.deepEqual(r1.state, r0.state);
    console.log(
      `sync-bn: ${names.length} tensors, largest relative error beyond 2 ulps ${worst} (${worstName})`,
    );
  },
});
