import assert from "node:assert/strict";
import { crossEntropy, temperatureKl, weightedSum } from "../src/ops/loss.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { checkOp, Fixture, setupGpu } from "./helpers.ts";

for (const label of ["k10", "k1000", "large"]) {
  Deno.test(`crossEntropy ${label}: the batch-mean loss and its logits gradient match F.cross_entropy`, async () => {
    await setupGpu();
    const f = await Fixture.load(`loss_ce_${label}`);
    await checkOp(f, {
      inputs: ["logits", "labels"],
      grads: { logits: "grad_logits" },
      run: ({ logits, labels }) => ({ loss: crossEntropy(logits, labels) }),
    });
  });
}

for (const label of ["t3", "t1", "k1000"]) {
  Deno.test(`temperatureKl ${label}: loss and student gradient match SPEC §6; the teacher gets none`, async () => {
    await setupGpu();
    const f = await Fixture.load(`loss_kl_${label}`);
    const temperature = f.floats("temperature")[0];
    await checkOp(f, {
      inputs: ["student", "teacher"],
      grads: { student: "grad_student" },
      noGrads: ["teacher"],
      run: ({ student, teacher }) => ({ loss: temperatureKl(student, teacher, temperature) }),
    });
  });
}

Deno.test("weightedSum: the SML loss of three modules (ten terms) and every logits gradient match PyTorch", async () => {
  await setupGpu();
  const f = await Fixture.load("loss_sml");
  const [temperature, alpha, lambda, modules] = [3, 0.5, 0.9, 3];
  const heads = [0, 1, 2, 3].map((i) => `y${i}`);
  const sml = ({ labels, ...named }: Record<string, Tensor>) => {
    const logits = heads.map((key) => named[key]);
    const terms: Tensor[] = [];
    const weights: number[] = [];
    const hardWeight = (1 - lambda) / (modules * alpha + 1);
    terms.push(crossEntropy(logits[0], labels));
    weights.push(hardWeight);
    const softWeight = lambda / (2 * modules + 1e-8);
    for (const y of logits.slice(1)) {
      terms.push(
        crossEntropy(y, labels),
        temperatureKl(y, logits[0], temperature),
        temperatureKl(logits[0], y, temperature),
      );
      weights.push(hardWeight * alpha, softWeight, softWeight);
    }
    return { loss: weightedSum(terms, weights) };
  };
  await checkOp(f, {
    inputs: [...heads, "labels"],
    grads: Object.fromEntries(heads.map((key) => [key, `grad_${key}`])),
    run: sml,
  });
});

Deno.test("losses: mismatched shapes, label dtypes and term counts throw naming the tensors", async () => {
  await setupGpu();
  const logits = Tensor.empty([4, 10], { name: "snn_logits" });
  const floatLabels = Tensor.empty([4], { name: "targets" });
  const shortLabels = Tensor.empty([3], { name: "targets", dtype: "i32" });
  const other = Tensor.empty([4, 9], { name: "module_logits" });
  assert.throws(() => crossEntropy(logits, floatLabels), /targets \[4\] f32 must be i32 \(4\)/);
  assert.throws(() => crossEntropy(logits, shortLabels), /targets \[3\] i32 must be i32 \(4\)/);
  assert.throws(() => temperatureKl(logits, other, 3), /module_logits \[4, 9\].*snn_logits \[4, 10\]/);
  assert.throws(() => temperatureKl(logits, logits, 0), /temperature must be a positive number/);
  assert.throws(() => weightedSum([logits], [1]), /term snn_logits \[4, 10\] f32 must be an f32 scalar/);
  assert.throws(() => weightedSum([], []), /0 terms and 0 weights/);
  for (const t of [logits, floatLabels, shortLabels, other]) t.dispose();
});
