/**
 * examples/quick_tour.ts (the README's API tour) run on weights whose classifier heads (the SNN's and each
 * module's last linear layer) are zero. Every logit is then 0 whatever the backbone computes, which fixes
 * what the tour must print and export, by hand: each cross-entropy is ln 10, so hard = ln 10; the KL
 * terms compare equal distributions, so soft = 0 and loss = (1 - lambda) ln 10; no gradient reaches the
 * backbone through zero weights, so conv1's is 0 and AdamW only decays it; and the SNN head's bias takes a
 * first AdamW step of lr against the sign of its gradient sum_b (softmax - onehot) > 0 for the four labels.
 */
import assert from "node:assert/strict";
import { encodeSafetensors, readSafetensors } from "../src/io/safetensors.ts";
import { stateDict } from "../src/io/state_dict.ts";
import { createModel } from "../src/models/registry.ts";
import { assertClose, FORWARD, setupGpu } from "./helpers.ts";

/** The tour's model, optimizer and loss settings (examples/quick_tour.ts). */
const MODEL = {
  numClasses: 10,
  T: 2,
  width: 8,
  seed: 3,
  modules: { positions: [3, 3], kernels: [[7, 5, 3]], width: 16 },
};
const LABELS = [1, 7, 3, 0];
const [LR, WEIGHT_DECAY, LAMBDA] = [0.01, 0.02, 0.9];
const HEADS = /^(linear2|sb_layers\.\d+\.prediction\.5)\.(weight|bias)$/;

/** The tour's model's state with every classifier head zeroed, written where the tour can load it. */
async function zeroHeadWeights(): Promise<{ path: string; conv1: Float32Array }> {
  await setupGpu();
  const model = createModel("resnet19", MODEL);
  const state = await stateDict(model);
  model.dispose();
  const zeroed = [...state.keys()].filter((key) => HEADS.test(key));
  assert.equal(zeroed.length, 6, zeroed.join());
  for (const key of zeroed) (state.get(key)!.data as Float32Array).fill(0);
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await Deno.writeFile(path, encodeSafetensors(state));
  return { path, conv1: state.get("conv1.weight")!.data as Float32Array };
}

Deno.test("examples/quick_tour.ts with zero classifier heads prints and exports the values they fix", async () => {
  const { path, conv1 } = await zeroHeadWeights();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../examples/quick_tour.ts", import.meta.url).pathname, path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, out + new TextDecoder().decode(stderr));
  await Deno.remove(path);

  const parts = out.match(/^loss (\S+) \(hard (\S+), soft (\S+)\)$/m);
  assert.ok(parts, out);
  const [loss, hard, soft] = parts.slice(1).map(Number);
  assertClose([hard], [Math.log(10)], FORWARD, "hard loss of all-zero logits");
  assert.ok(Math.abs(soft) <= 1e-6, `soft loss of equal distributions is ${soft}`);
  assertClose([loss], [(1 - LAMBDA) * Math.log(10)], FORWARD, "loss");
  assert.match(out, /^conv1\.weight gradient: 216 values, first 0\.000e\+0$/m);

  const logits = out.match(/^eval logits \[4,10\]: (\S+)$/m);
  assert.ok(logits, out);
  assert.ok(logits[1].split(",").every((v) => Number.isFinite(Number(v))), logits[1]);

  const exportedPath = out.match(/^exported the SNN without modules to (\S+)$/m)?.[1];
  assert.ok(exportedPath, out);
  const exported = await readSafetensors(exportedPath);
  await Deno.remove(exportedPath);
  assert.equal([...exported.keys()].filter((key) => key.startsWith("sb_layers.")).length, 0);
  // No gradient: AdamW's update is 0 / (0 + eps) and only the decoupled weight decay moves conv1.
  const decayed = conv1.map((w) => w * (1 - LR * WEIGHT_DECAY));
  assertClose(exported.get("conv1.weight")!.data as Float32Array, decayed, FORWARD, "conv1 after the step");
  // d loss / d bias_c = (1 - lambda) / (2 alpha + 1) * sum_b (0.1 - [label_b = c]) / B, alpha = 0.5: the
  // four labelled classes get a negative gradient, so the first AdamW step (lr * g / |g|) raises their bias.
  const bias = [...Array(10).keys()].map((c) => LABELS.includes(c) ? LR : -LR);
  assertClose(
    exported.get("linear2.bias")!.data as Float32Array,
    bias,
    FORWARD,
    "SNN head bias after the step",
  );
});
