/**
 * The examples beside the tour train on learnable toy tasks through the pipeline API with a swapped
 * stage; each must actually learn: its loss falls and its test accuracy is well above chance.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

async function runExample(
  name: string,
): Promise<{ result: Record<string, number | number[]>; folder: string }> {
  const folder = await Deno.makeTempDir({ prefix: `${name}_` });
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(`../examples/${name}.ts`, import.meta.url).pathname, folder],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, out + new TextDecoder().decode(stderr));
  const last = out.trim().split("\n").at(-1)!;
  return { result: JSON.parse(last), folder };
}

async function assertRunFolder(folder: string): Promise<void> {
  const records = (await Deno.readTextFile(join(folder, "metrics.jsonl"))).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.ok(records.some((r) => r.type === "epoch"), "metrics.jsonl has no epoch record");
  assert.ok((await Deno.stat(join(folder, "checkpoints", "latest.ckpt"))).size > 0);
}

Deno.test("examples/event_stream.ts: own event streams -> event frames -> SML training learns the toy task", async () => {
  const { result, folder } = await runExample("event_stream");
  const losses = result.epochLosses as number[];
  assert.equal(losses.length, 4);
  assert.ok(losses.at(-1)! < 0.7 * losses[0], `training loss did not fall: ${losses.join(", ")}`);
  assert.ok((result.testTop1 as number) >= 70, `test top-1 ${result.testTop1}% (chance ${result.chance}%)`);
  await assertRunFolder(folder);
  await Deno.remove(folder, { recursive: true });
});

Deno.test("examples/custom_model.ts: own Module with a surrogate module at a named point learns the toy task", async () => {
  const { result, folder } = await runExample("custom_model");
  const losses = result.stepLosses as number[];
  assert.equal(losses.length, 12);
  assert.ok(losses.at(-1)! < 0.5 * losses[0], `training loss did not fall: ${losses.join(", ")}`);
  assert.ok(
    (result.testTop1 as number) >= 70,
    `SNN test top-1 ${result.testTop1}% (chance ${result.chance}%)`,
  );
  assert.ok((result.moduleTop1 as number) >= 70, `module test top-1 ${result.moduleTop1}%`);
  await assertRunFolder(folder);
  await Deno.remove(folder, { recursive: true });
});
