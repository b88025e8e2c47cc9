import assert from "node:assert/strict";
import { dispatchTotal } from "../src/gpu/kernels.ts";
import { AdamW } from "../src/optim/adam.ts";
import { FiniteWatch } from "../src/optim/finite_check.ts";
import { GradScaler, type GradScalerOptions, type GradScalerState } from "../src/optim/grad_scaler.ts";
import { createOptimizer } from "../src/optim/registry.ts";
import { SGD } from "../src/optim/sgd.ts";
import { Scope } from "../src/tensor/scope.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { assertClose, Fixture, setupGpu, TestRng, type Tolerance } from "./helpers.ts";

/** The options of tests/oracle/grad_scaler.py. */
const OPTIONS: GradScalerOptions = {
  initScale: 3000,
  growthFactor: 1.5,
  backoffFactor: 0.375,
  growthInterval: 3,
};
const SGD_OPTIONS = { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 };
const ADAMW_OPTIONS = { lr: 0.01, weightDecay: 0.02 };
const STEPS = 10;
const NAMES = ["sgd", "adamw"] as const;

/**
 * Relative 1e-6, the floor for elements that cancel to near zero. Measured: parameters within 1e-7 of
 * the tensor's scale (SGD) and 2e-8 (AdamW, against our counting); against torch's own AdamW, which never
 * counts the skipped first step, the AdamW parameter is 2e-3 to 6e-3 off.
 */
const TOLERANCE: Tolerance = { rtol: 1e-6, scaleFloor: 1e-6 };

/** Element-wise identity of the bits, except that every NaN equals every NaN. */
function assertSameFloats(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (Number.isNaN(expected[i]) && Number.isNaN(actual[i])) continue;
    assert.ok(
      Object.is(actual[i], expected[i]),
      `${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`,
    );
  }
}

Deno.test("grad scaler: 10 steps with overflows match torch's GradScaler, with guarded SGD and AdamW", async () => {
  await setupGpu();
  const f = await Fixture.load("grad_scaler");
  const params = { sgd: f.tensor("sgd_initial"), adamw: f.tensor("adamw_initial") };
  const scaler = new GradScaler(OPTIONS);
  const sgd = new SGD([params.sgd], SGD_OPTIONS);
  const adamw = new AdamW([params.adamw], ADAMW_OPTIONS);
  const scales = f.floats("scale");
  const trackers = f.ints("growth_tracker");
  const foundInf = f.ints("found_inf");
  let skipped = 0;
  for (let step = 0; step < STEPS; step++) {
    const scope = new Scope();
    scope.run(() => {
      for (const name of NAMES) params[name].grad = f.tensor(`grad_${name}_step${step}`);
    });
    const before = dispatchTotal();
    scaler.unscale([params.sgd, params.adamw]);
    assert.equal(dispatchTotal() - before, 2, "one unscale dispatch per parameter");
    for (const name of NAMES) {
      const key = `unscaled_${name}_step${step}`;
      assertSameFloats(await params[name].grad!.readFloat(), f.floats(key), key);
    }
    sgd.step(scaler.guard);
    adamw.step(scaler.guard);
    scaler.update();
    sgd.zeroGrad();
    adamw.zeroGrad();
    scope.dispose();

    skipped += foundInf[step];
    assert.deepEqual(
      await scaler.read(),
      { scale: scales[step], growthTracker: trackers[step], skippedSteps: skipped },
      `scaler after step ${step}`,
    );
    const sgdKey = `sgd_step${step}`;
    assertClose(await params.sgd.readFloat(), f.floats(sgdKey), TOLERANCE, sgdKey);
    const adamwKey = `adamw_counted_step${step}`;
    assertClose(await params.adamw.readFloat(), f.floats(adamwKey), TOLERANCE, adamwKey);
    if (step === 0) {
      // The skipped first update: untouched, as torch leaves it.
      assertSameFloats(await params.adamw.readFloat(), f.floats("adamw_torch_step0"), "adamw_torch_step0");
    }
  }
  const sgdState = await sgd.exportState();
  assertClose(
    sgdState.slots.momentum_buffer[0],
    f.floats("state_sgd_momentum_buffer"),
    TOLERANCE,
    "momentum_buffer",
  );
  const adamwState = await adamw.exportState();
  for (const slot of ["exp_avg", "exp_avg_sq", "step"]) {
    const key = `state_adamw_counted_${slot}`;
    assertClose(adamwState.slots[slot][0], f.floats(key), TOLERANCE, key);
  }
  for (const t of [scaler, sgd, adamw, params.sgd, params.adamw]) t.dispose();
});

Deno.test("grad scaler: growth that would overflow f32 keeps the scale, as torch", async () => {
  await setupGpu();
  const f = await Fixture.load("grad_scaler");
  const scaler = new GradScaler({ initScale: 1.5 * 2 ** 127, growthFactor: 2, growthInterval: 1 });
  const scales = f.floats("overflow_scale");
  const trackers = f.ints("overflow_growth_tracker");
  for (let step = 0; step < scales.length; step++) {
    scaler.update();
    const { scale, growthTracker } = await scaler.read();
    assert.equal(scale, scales[step]);
    assert.equal(growthTracker, trackers[step]);
  }
  scaler.dispose();
});

Deno.test("grad scaler: unscale multiplies by f32(1 / scale) rounded as torch's float64 reciprocal", async () => {
  await setupGpu();
  // Results stay normal f32 (a GPU may flush subnormals); the last scale is itself subnormal.
  const scales = [1, 3, 7, 0.1, 1125, 65536, 1.3 * 2 ** -100, 1.7 * 2 ** 100, 2 ** 125, 3e-39];
  const rng = new TestRng(12345);
  for (let i = 0; i < 40; i++) {
    scales.push(Math.fround((1 + rng.uniform()) * 2 ** Math.floor(rng.uniform(-120, 120))));
  }
  const grads = [1, -1, 0.3, 123.456, -7e-3, 2 ** 20 + 1];
  const scope = new Scope();
  const cases = scope.run(() =>
    scales.map((scale) => {
      const scaler = new GradScaler({ initScale: scale });
      const param = Tensor.fromData(new Float32Array(grads.length), [grads.length]);
      param.grad = Tensor.fromData(grads, [grads.length]);
      scaler.unscale([param]);
      return { scale, scaler, param };
    })
  );
  for (const { scale, scaler, param } of cases) {
    const inverse = Math.fround(1 / Math.fround(scale));
    const expected = Float32Array.from(grads, (g) => Math.fround(Math.fround(g) * inverse));
    assertSameFloats(await param.grad!.readFloat(), expected, `grads / ${scale}`);
    assert.equal((await scaler.read()).skippedSteps, 0);
    scaler.dispose();
  }
  scope.dispose();
});

Deno.test("grad scaler: a skipped step leaves parameters and optimizer state as they were; a skipped first update leaves zero state", async () => {
  await setupGpu();
  const a = Tensor.fromData([1, 2, 3], [3], { name: "a" });
  const b = Tensor.fromData([4, 5], [2], { name: "b" });
  const c = Tensor.fromData([6, 7], [2], { name: "c" });
  const momentum = createOptimizer("sgd", [a], { lr: 0.1, momentum: 0.9, dampening: 0.5 });
  const adam = createOptimizer("adam", [b], { lr: 0.1 });
  const plain = createOptimizer("sgd", [c], { lr: 0.1 });
  const optimizers = [momentum, adam, plain];
  const scaler = new GradScaler({ initScale: 4 });
  const step = (gradA: number[], gradB: number[], gradC: number[]) => {
    const scope = new Scope();
    scope.run(() => {
      a.grad = Tensor.fromData(gradA, [3]);
      b.grad = Tensor.fromData(gradB, [2]);
      c.grad = Tensor.fromData(gradC, [2]);
    });
    scaler.unscale([a, b, c]);
    for (const optimizer of optimizers) optimizer.step(scaler.guard);
    scaler.update();
    for (const optimizer of optimizers) optimizer.zeroGrad();
    scope.dispose();
  };
  const snapshot = async () => ({
    values: await Promise.all([a, b, c].map((t) => t.readFloat())),
    states: await Promise.all(optimizers.map((o) => o.exportState())),
  });

  step([4, Infinity, 4], [4, 4], [4, 4]);
  const afterFirst = await snapshot();
  assert.deepEqual(afterFirst.values, [
    Float32Array.of(1, 2, 3),
    Float32Array.of(4, 5),
    Float32Array.of(6, 7),
  ]);
  assert.deepEqual(afterFirst.states[0].slots.momentum_buffer, [new Float32Array(3)]);
  assert.deepEqual(afterFirst.states[1].slots, {
    exp_avg: [new Float32Array(2)],
    exp_avg_sq: [new Float32Array(2)],
    step: [Float32Array.of(1)],
  });
  assert.deepEqual(await scaler.read(), { scale: 2, growthTracker: 0, skippedSteps: 1 });

  // Scale 2: gradients [1, 2, 3] after unscaling. The momentum buffer starts from zero, so dampening
  // applies: buf = 0.5 * d_p, where torch (which never saw the skipped step) has buf = d_p.
  step([2, 4, 6], [2, -2], [2, 4]);
  const updated = await snapshot();
  const sgdUpdate = (p: number, d: number) => Math.fround(p + Math.fround(-Math.fround(0.1) * d));
  assert.deepEqual(updated.states[0].slots.momentum_buffer, [Float32Array.of(0.5, 1, 1.5)]);
  assert.deepEqual(updated.values[0], Float32Array.of(sgdUpdate(1, 0.5), sgdUpdate(2, 1), sgdUpdate(3, 1.5)));
  assert.deepEqual(updated.values[2], Float32Array.of(sgdUpdate(6, 1), sgdUpdate(7, 2)));
  assert.notDeepEqual(updated.values[1], afterFirst.values[1]);

  step([2, 4, 6], [NaN, 2], [2, 4]);
  const afterSkip = await snapshot();
  assert.deepEqual(afterSkip.values, updated.values);
  assert.deepEqual(afterSkip.states[0], { ...updated.states[0], step: 3 });
  assert.deepEqual(afterSkip.states[2], { ...updated.states[2], step: 3 });
  // Adam counts the skipped update (documented): only its step slot moves.
  assert.deepEqual(afterSkip.states[1], {
    ...updated.states[1],
    step: 3,
    slots: { ...updated.states[1].slots, step: [Float32Array.of(3)] },
  });
  assert.deepEqual(await scaler.read(), { scale: 1, growthTracker: 0, skippedSteps: 2 });
  for (const t of [...optimizers, scaler, a, b, c]) t.dispose();
});

Deno.test("grad scaler: FiniteWatch without gradients ignores a skipped step's inf, still sees a non-finite value", async () => {
  await setupGpu();
  const w = Tensor.fromData([1, 2], [2], { name: "w" });
  const scaler = new GradScaler();
  const valuesWatch = new FiniteWatch({ gradients: false });
  const fullWatch = new FiniteWatch();
  let stepNumber = 7;
  const optimizer = fullWatch.watch(
    valuesWatch.watch(createOptimizer("sgd", [w], { lr: 0.1 }), () => stepNumber),
    () => stepNumber,
  );
  w.grad = Tensor.fromData([Infinity, 1], [2]);
  scaler.unscale([w]);
  optimizer.step(scaler.guard);
  scaler.update();
  optimizer.zeroGrad();
  assert.deepEqual([...await w.read()], [1, 2], "the guard reached the wrapped optimizer");
  assert.equal(await valuesWatch.read(), null);
  assert.deepEqual(await fullWatch.read(), { index: 0, step: 7, part: "gradient" });

  const bad = Tensor.fromData([NaN, 1], [2], { name: "bad" });
  bad.grad = Tensor.fromData([0, 0], [2]);
  stepNumber = 9;
  valuesWatch.check([w, bad], stepNumber);
  assert.deepEqual(await valuesWatch.read(), { index: 1, step: 9, part: "value" });
  for (const t of [optimizer, scaler, valuesWatch, fullWatch, w, bad]) t.dispose();
});

Deno.test("grad scaler: exportState and importState round trip; the imported options apply", async () => {
  await setupGpu();
  const first = new GradScaler({ initScale: 8, growthInterval: 2 });
  first.update();
  first.update();
  first.update();
  const saved = await first.exportState();
  assert.deepEqual(saved, {
    scale: 16,
    growthTracker: 1,
    skippedSteps: 0,
    initScale: 8,
    growthFactor: 2,
    backoffFactor: 0.5,
    growthInterval: 2,
  });
  const resumed = new GradScaler({ growthFactor: 4, growthInterval: 100 });
  resumed.importState(saved);
  assert.deepEqual(await resumed.exportState(), saved);
  first.update();
  resumed.update();
  assert.deepEqual(await resumed.exportState(), await first.exportState());
  assert.equal((await resumed.read()).scale, 32);
  for (const t of [first, resumed]) t.dispose();
});

Deno.test("grad scaler: options and imported state are checked, and errors name what is wrong", async () => {
  await setupGpu();
  assert.throws(
    () => new GradScaler({ initScale: 0 }),
    /grad scaler: initScale is 0; it must be a finite number > 0/,
  );
  assert.throws(() => new GradScaler({ initScale: 1e39 }), /grad scaler: initScale is 1e\+39/);
  assert.throws(
    () => new GradScaler({ growthFactor: 1 }),
    /grad scaler: growthFactor is 1; it must be a finite number > 1/,
  );
  assert.throws(
    () => new GradScaler({ backoffFactor: 1 }),
    /grad scaler: backoffFactor is 1; it must be in \(0, 1\)/,
  );
  assert.throws(() => new GradScaler({ backoffFactor: 0 }), /grad scaler: backoffFactor is 0/);
  assert.throws(
    () => new GradScaler({ growthInterval: 1.5 }),
    /grad scaler: growthInterval is 1.5; it must be an integer in \[1, 2147483647\]/,
  );

  const scaler = new GradScaler();
  const good = await scaler.exportState();
  const rejects = (state: unknown, message: RegExp) =>
    assert.throws(() => scaler.importState(state as GradScalerState), message);
  rejects({ ...good, scale: -1 }, /grad scaler: imported scale is -1; it must be a finite number > 0/);
  rejects({ ...good, scale: "1" }, /grad scaler: imported scale is 1, expected a number/);
  rejects(
    { ...good, growthTracker: 2000 },
    /grad scaler: imported growthTracker is 2000; it must be an integer in \[0, growthInterval 2000\)/,
  );
  rejects({ ...good, skippedSteps: -2 }, /grad scaler: imported skippedSteps is -2; it must be a count/);
  rejects({ ...good, growthFactor: 0.5 }, /grad scaler: growthFactor is 0.5/);
  const { skippedSteps: _, ...missing } = good;
  rejects(missing, /grad scaler: imported state has keys \[scale, growthTracker, initScale, /);
  rejects({ ...good, extra: 1 }, /grad scaler: imported state has keys .*extra\], expected \[scale, /);
  assert.deepEqual(await scaler.exportState(), good, "a rejected import changes nothing");

  const w = Tensor.fromData([1], [1], { name: "w" });
  w.grad = Tensor.fromData([1, 2], [2], { name: "g" });
  assert.throws(
    () => scaler.unscale([w]),
    /grad scaler: parameter 0 \(w\) has \[1\] but its grad g is f32 \[2\]; expected f32 of the same size/,
  );
  scaler.dispose();
  assert.throws(() => scaler.update(), /grad scaler: update\(\) after dispose\(\)/);
  assert.throws(() => scaler.guard, /grad scaler: guard after dispose\(\)/);
  w.dispose();
});
