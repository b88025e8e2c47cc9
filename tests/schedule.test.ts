import assert from "node:assert/strict";
import { learningRateAt, type ScheduleOptions } from "../src/optim/schedule.ts";
import { assertClose, Fixture, type Tolerance } from "./helpers.ts";

/** The schedules of tests/oracle/optim.py, printed there by stepping torch's schedulers. */
const SCHEDULES: Record<string, ScheduleOptions> = {
  cosine: { kind: "cosine", baseLr: 0.01, epochs: 12 },
  cosine_min: { kind: "cosine", baseLr: 4e-4, epochs: 9, minLr: 1e-5 },
  cosine_warmup: { kind: "cosine", baseLr: 4e-3, epochs: 10, warmupEpochs: 3, minLr: 1e-4 },
  cifar: { kind: "cosine", baseLr: 0.01, epochs: 300 },
};

/**
 * The fixture stores torch's float64 learning rates as f32 (fixture_io writes no F64), a relative
 * rounding of at most 6e-8; 1e-6 leaves margin for that alone. The floor covers the epochs where the
 * cosine reaches 0 and torch's recursive update leaves ~1e-19 instead.
 */
const SCHEDULE: Tolerance = { rtol: 1e-6, scaleFloor: 1e-6 };

Deno.test("schedule: cosine annealing and warm-up match torch's CosineAnnealingLR / LinearLR+SequentialLR", async () => {
  const f = await Fixture.load("optim_schedule");
  for (const [name, options] of Object.entries(SCHEDULES)) {
    const expected = f.floats(`lr_${name}`);
    const actual = Array.from(expected, (_, epoch) => learningRateAt(epoch, options));
    assertClose(actual, expected, SCHEDULE, `optim_schedule/lr_${name}`);
  }
});

Deno.test("schedule: warm-up rises linearly to baseLr exactly where the cosine starts", () => {
  const options: ScheduleOptions = { kind: "cosine", baseLr: 0.4, epochs: 8, warmupEpochs: 3 };
  assert.deepEqual([0, 1, 2, 3].map((e) => learningRateAt(e, options)), [0.1, 0.2, 0.30000000000000004, 0.4]);
  // A fractional epoch (per-iteration updates) stays on the same line.
  assert.equal(learningRateAt(1.5, options), 0.4 * 2.5 / 4);
  assert.equal(learningRateAt(8, options), 0);
  assert.ok(Math.abs(learningRateAt(5.5, options) - 0.2) < 1e-15, "half-way through the decay");
});

Deno.test("schedule: kind none holds baseLr after warm-up", () => {
  assert.equal(learningRateAt(0, { kind: "none", baseLr: 0.3, epochs: 5 }), 0.3);
  assert.equal(learningRateAt(7, { kind: "none", baseLr: 0.3, epochs: 5 }), 0.3);
  assert.equal(learningRateAt(0, { kind: "none", baseLr: 0.3, epochs: 5, warmupEpochs: 2 }), 0.3 * 1 / 3);
});

Deno.test("schedule: invalid options and epochs are errors that say what is expected", () => {
  const cosine: ScheduleOptions = { kind: "cosine", baseLr: 0.1, epochs: 10 };
  assert.throws(() => learningRateAt(-1, cosine), /schedule: epoch is -1; expected >= 0/);
  assert.throws(
    () => learningRateAt(0, { ...cosine, epochs: 0 }),
    /epochs is 0; expected a whole number > 0/,
  );
  assert.throws(
    () => learningRateAt(0, { ...cosine, warmupEpochs: 10 }),
    /warmupEpochs is 10; expected a whole number from 0 to 9/,
  );
  assert.throws(() => learningRateAt(0, { ...cosine, baseLr: NaN }), /baseLr is NaN/);
  assert.throws(
    () => learningRateAt(0, { ...cosine, kind: "step" as ScheduleOptions["kind"] }),
    /unknown kind "step"; expected "cosine" or "none"/,
  );
});
