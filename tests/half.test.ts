/**
 * The CPU-side f16 conversion (Tensor.fromData of numbers as f16, readFloat of f16) bit for bit against
 * torch's .half(), on the values tests/oracle/conv2d_f16.py draws around every edge of the conversion:
 * mantissa ties (to even), subnormals and their ties, overflow to infinity, NaN.
 */
import assert from "node:assert/strict";
import { floatToHalf, halfToFloat } from "../src/tensor/tensor.ts";
import { Fixture } from "./helpers.ts";

const isNan = (bits: number) => (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;

Deno.test("floatToHalf rounds as torch's .half(): ties to even, subnormals, overflow to infinity, NaN", async () => {
  const f = await Fixture.load("half_rounding");
  const values = f.floats("values");
  const expected = f.ints("bits");
  for (let i = 0; i < values.length; i++) {
    const bits = floatToHalf(values[i]);
    if (isNan(expected[i])) assert.ok(isNan(bits), `value ${values[i]}: NaN expected, got bits ${bits}`);
    else assert.equal(bits, expected[i], `value ${values[i]}`);
  }
  // The ties the fixture holds, by name: 1 + 2^-11 rounds down to 1, 1 + 3 * 2^-11 up to 1 + 2^-9,
  // 2.5 * 2^-24 (a subnormal tie) down to 2 * 2^-24, 65520 (halfway past the largest f16) to infinity.
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00);
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(floatToHalf(2.5 * 2 ** -24), 0x0002);
  assert.equal(floatToHalf(-65520), 0xfc00);
});

Deno.test("halfToFloat inverts floatToHalf on every f16 bit pattern", () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = halfToFloat(bits);
    if (isNan(bits)) assert.ok(Number.isNaN(value), `bits ${bits}`);
    else assert.equal(floatToHalf(value), bits, `bits ${bits} -> ${value}`);
  }
  assert.equal(halfToFloat(0x0001), 2 ** -24);
  assert.equal(halfToFloat(0x7bff), 65504);
  assert.equal(halfToFloat(0xfc00), -Infinity);
});
