import assert from "node:assert/strict";

Deno.test("examples/quick_tour.ts (the README's API tour) runs end to end", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../examples/quick_tour.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, out + new TextDecoder().decode(stderr));
  assert.match(out, /^loss [\d.]+ \(hard [\d.]+, soft [\d.e-]+\)$/m);
  assert.match(out, /conv1.weight gradient: 216 values/);
  assert.match(out, /eval logits \[4,10\]/);
  assert.match(out, /exported the SNN without modules/);
});
