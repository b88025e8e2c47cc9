/**
 * The public API in one script: build a spiking ResNet with surrogate modules by name, load
 * reference-named safetensors, run a training-mode forward, the SML loss, backward, read a gradient,
 * take an optimizer step, evaluate, and export. Run: deno run -A examples/quick_tour.ts [weights.safetensors]
 */
import {
  AdamW,
  createModel,
  initGpu,
  loadSafetensors,
  saveSafetensors,
  Scope,
  smlLoss,
  synchronize,
  Tape,
  Tensor,
} from "../mod.ts";

await initGpu();

// A narrow ResNet-19 (stem width 8) with modules after blocks 3 and 6, 10 classes, T = 2.
const model = createModel("resnet19", {
  numClasses: 10,
  T: 2,
  width: 8,
  modules: { positions: [3, 3], kernels: [[7, 5, 3]], width: 16 },
});

// Weights under the reference implementation's state_dict names (with or without sb_layers.*).
const weightsPath = Deno.args[0] ?? await Deno.makeTempFile({ suffix: ".safetensors" });
if (!Deno.args[0]) await saveSafetensors(weightsPath, model);
await loadSafetensors(weightsPath, model);

// A batch of 4 images (B, C, H, W) and labels.
const input = Tensor.fromData(Float32Array.from({ length: 4 * 3 * 16 * 16 }, (_, i) => Math.sin(i)), [
  4,
  3,
  16,
  16,
]);
const labels = Tensor.fromData(Int32Array.from([1, 7, 3, 0]), [4], { dtype: "i32" });

const optimizer = new AdamW(model.parameters(), { lr: 0.01, weightDecay: 0.02 });
const tape = new Tape();
const { loss, hard, soft } = tape.run(() => {
  model.train();
  const { logits, moduleLogits } = model.forward(input);
  return smlLoss(logits, moduleLogits, labels, { temperature: 3, alpha: 0.5, lambda: 0.9 });
});
console.log(
  `loss ${(await loss.read())[0]} (hard ${(await hard.read())[0]}, soft ${(await soft!.read())[0]})`,
);
tape.backward(loss);

const [name, stemWeight] = model.namedParameters().find(([n]) => n === "conv1.weight")!;
const gradient = await stemWeight.grad!.readFloat();
console.log(`${name} gradient: ${gradient.length} values, first ${gradient[0].toExponential(3)}`);

optimizer.step();
optimizer.zeroGrad();
tape.dispose();

// Evaluation: running BN statistics, no tape; the modules can be dropped at inference.
model.eval();
model.useSurrogates = false;
const scope = new Scope();
const logits = scope.run(() => model.forward(input).logits);
console.log(
  `eval logits [${logits.shape}]: ${
    Array.from(await logits.readFloat()).slice(0, 3).map((v) => v.toFixed(3))
  }`,
);
scope.dispose();

const exported = await Deno.makeTempFile({ suffix: ".safetensors" });
await saveSafetensors(exported, model, { surrogates: false });
console.log(`exported the SNN without modules to ${exported}`);
await synchronize();
