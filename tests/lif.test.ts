import assert from "node:assert/strict";
import { lif, type LifOptions, lifSmoothForGradientCheck, type Surrogate } from "../src/ops/lif.ts";
import { noGrad, Tape } from "../src/tensor/tape.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import {
  assertClose,
  assertTensorClose,
  checkOp,
  Fixture,
  FORWARD,
  GRADIENT,
  setupGpu,
  TestRng,
} from "./helpers.ts";

const SURROGATES: Surrogate[] = ["dspike", "sigmoid", "atan"];

/** The options a fixture was made with (tests/oracle/lif.py writes them as `params`). */
function fixtureOptions(f: Fixture, surrogate: Surrogate): LifOptions {
  const [T, tau, threshold, gamma, region, alphaSigmoid, alphaAtan] = f.floats("params");
  const alpha = surrogate === "sigmoid" ? alphaSigmoid : alphaAtan;
  return { T, tau, threshold, surrogate, gamma, region, alpha };
}

for (const label of ["t1_4d", "t2_2d_batch1", "t4_4d", "t4_2d_batch1", "t4_params"]) {
  Deno.test(`lif ${label}: spikes and BPTT gradients match PyTorch for every surrogate`, async () => {
    await setupGpu();
    const f = await Fixture.load(`lif_${label}`);
    for (const surrogate of SURROGATES) {
      await checkOp(f, {
        inputs: ["x"],
        grads: { x: `grad_${surrogate}` },
        up: "up",
        run: ({ x }) => ({ spikes: lif(x, fixtureOptions(f, surrogate)) }),
      });
    }
  });
}

Deno.test("lif: without a tape (or under noGrad) it records nothing and fires the same spikes", async () => {
  await setupGpu();
  const f = await Fixture.load("lif_t4_4d");
  const x = f.tensor("x", { requiresGrad: true });
  const plain = lif(x, { T: 4 });
  assert.equal(plain.requiresGrad, false);
  await assertTensorClose(plain, f, "spikes", FORWARD);
  const tape = new Tape();
  const guarded = tape.run(() => noGrad(() => lif(x, { T: 4 })));
  assert.equal(tape.length, 0);
  await assertTensorClose(guarded, f, "spikes", FORWARD);
  tape.dispose();
  for (const t of [x, plain]) t.dispose();
});

Deno.test("lif: a first dimension that T does not divide is rejected with the shape in the message", async () => {
  await setupGpu();
  const x = Tensor.fromData(new Float32Array(6), [3, 2], { name: "membrane_input" });
  assert.throws(() => lif(x, { T: 2 }), /membrane_input \[3, 2\].*T=2/);
  assert.throws(() => lif(x, { T: 0 }), /positive integer/);
  x.dispose();
});

/**
 * The backward checked against central finite differences of the same GPU kernel's forward. With the
 * Heaviside forward there is no derivative to difference, so this uses the test-only smooth variant:
 * the forward fires s = sigmoid(alpha (u - theta)), and with the sigmoid surrogate the backward
 * recursion is then the exact gradient of the forward, reset term (-u * sg) included. The loss is
 * L = sum(s * up). Neurons are independent, so one pair of forward runs perturbs x at step t for every
 * neuron at once, and each neuron's difference is read from its own outputs.
 *
 * Accuracy: the forward values are f32 (absolute error ~1e-7 each, a few ulps through exp), which the
 * difference quotient divides by 2h; Richardson extrapolation of h and h/2 removes the O(h^2)
 * truncation term. With h = 2e-2 the quotient agrees with the backward to ~3e-5 of the gradients' rms,
 * well inside the ordinary GRADIENT tolerance, which dropping the reset term fails by 500x.
 */
Deno.test("lif: the backward matches central finite differences of a smooth forward (reset included)", async () => {
  await setupGpu();
  const T = 4;
  const neurons = 2 * 13;
  const options: LifOptions = { T, tau: 0.5, threshold: 1.0, alpha: 4.0 };
  const xData = new TestRng(7).normals(T * neurons, 0.6, 0.9);
  const upData = new TestRng(8).normals(T * neurons);
  const x = Tensor.fromData(xData, [T * 2, 13], { name: "x", requiresGrad: true });
  const up = Tensor.fromData(upData, [T * 2, 13], { name: "up" });
  const tape = new Tape();
  const spikes = tape.run(() => lifSmoothForGradientCheck(x, options));
  tape.backward(spikes, up);
  const analytic = await x.grad!.readFloat();
  tape.dispose();

  const forwardAt = async (values: Float32Array) => {
    const input = Tensor.fromData(values, x.shape, { name: "x_perturbed" });
    const out = lifSmoothForGradientCheck(input, options);
    const data = await out.readFloat();
    input.dispose();
    out.dispose();
    return data;
  };
  /** Central difference quotient of L w.r.t. x at step t, for every neuron. */
  const differences = async (t: number, h: number) => {
    const plus = Float32Array.from(xData);
    const minus = Float32Array.from(xData);
    for (let j = 0; j < neurons; j++) {
      plus[t * neurons + j] += h;
      minus[t * neurons + j] -= h;
    }
    // The perturbation in f32 is not exactly h: divide by the step actually taken.
    const sPlus = await forwardAt(plus);
    const sMinus = await forwardAt(minus);
    const quotient = new Float64Array(neurons);
    for (let j = 0; j < neurons; j++) {
      let dL = 0;
      for (let s = 0; s < T; s++) {
        const i = s * neurons + j;
        dL += (sPlus[i] - sMinus[i]) * upData[i];
      }
      quotient[j] = dL / (plus[t * neurons + j] - minus[t * neurons + j]);
    }
    return quotient;
  };
  const h = 2e-2;
  const numeric = new Float64Array(T * neurons);
  for (let t = 0; t < T; t++) {
    const coarse = await differences(t, h);
    const fine = await differences(t, h / 2);
    for (let j = 0; j < neurons; j++) numeric[t * neurons + j] = (4 * fine[j] - coarse[j]) / 3;
  }
  assertClose(analytic, numeric, GRADIENT, "lif smooth-forward gradient");
  for (const t of [x, up]) t.dispose();
});
