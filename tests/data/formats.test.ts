/** .npz / .npy reading (files written by numpy) and JPEG decoding (files written and decoded by PIL). */
import assert from "node:assert/strict";
import { Fixture, FIXTURES } from "../helpers.ts";
import { parseNpy, parseNpz, readNpz, toNumbers } from "../../src/data/npz.ts";
import { decodeJpeg } from "../../src/data/jpeg.ts";
import { npyBytes, npzBytes } from "./writers.ts";

const DATA = `${FIXTURES}data/`;
const fixture = await Fixture.load("data/formats");

for (const file of ["dtypes.npz", "dtypes_compressed.npz"]) {
  Deno.test(`npz: every supported dtype from numpy's ${file}`, async () => {
    const arrays = await readNpz(`${DATA}npz/${file}`);
    const signed = Array.from({ length: 12 }, (_, i) => i - 5);
    const unsigned = Array.from({ length: 12 }, (_, i) => i * 7);
    const expect = (key: string, dtype: string, values: number[], shape = [3, 4]) => {
      const array = arrays.get(key)!;
      assert.equal(array.dtype, dtype, key);
      assert.deepEqual(array.shape, shape, key);
      assert.deepEqual(Array.from(toNumbers(array, key)), values, key);
    };
    expect("u1", "uint8", unsigned);
    expect("i1", "int8", signed);
    expect("u2", "uint16", unsigned.map((v) => (v * 1000) % 65536)); // numpy wraps the cast
    expect("i2", "int16", signed.map((v) => v * 1000));
    expect("u4", "uint32", unsigned.map((v) => v * 100000));
    expect("i4", "int32", signed.map((v) => v * 100000));
    expect("u8", "uint64", unsigned.map((v) => v * 1e12));
    expect("i8", "int64", signed.map((v) => v * 1e12));
    expect("f4", "float32", signed.map((v) => v / 4));
    expect("f8", "float64", signed.map((v) => v / 3));
    expect("b1", "bool", signed.map((v) => (v % 2 === 0 ? 1 : 0)));
    expect("scalar", "float32", [2.5], []);
    expect("empty", "uint8", [], [0, 3]);
    expect("column", "int16", [0, 1, 2, 3, 4], [5, 1]);
  });
}

Deno.test("npz: only requested keys are parsed; a missing key is named", async () => {
  const arrays = await readNpz(`${DATA}npz/dtypes.npz`, ["f4"]);
  assert.deepEqual([...arrays.keys()], ["f4"]);
  await assert.rejects(
    readNpz(`${DATA}npz/dtypes.npz`, ["pos"]),
    /dtypes\.npz has no array 'pos'; it has u1, i1/,
  );
});

Deno.test("npz: unsupported dtypes and layouts are rejected with the file and the reason", async () => {
  await assert.rejects(
    readNpz(`${DATA}npz/bad_complex.npz`),
    /bad_complex\.npz:z\.npy has dtype '<c8', which is not supported/,
  );
  await assert.rejects(
    readNpz(`${DATA}npz/bad_bigendian.npz`),
    /bad_bigendian\.npz:b\.npy has big-endian dtype '>i4'/,
  );
  await assert.rejects(
    readNpz(`${DATA}npz/bad_fortran.npz`),
    /bad_fortran\.npz:f\.npy is stored in Fortran order/,
  );
  await assert.rejects(
    readNpz(`${DATA}npz/bad_structured.npz`),
    /bad_structured\.npz:s\.npy has a header we cannot read/,
  );
  assert.throws(
    () => parseNpy(npyBytes(new Float32Array(2), [2], "<f2"), "half.npy"),
    /half\.npy has dtype '<f2'/,
  );
});

Deno.test("npz: truncated, non-zip, corrupt and missing files name the file", async () => {
  const good = await Deno.readFile(`${DATA}npz/dtypes_compressed.npz`);
  assert.throws(
    () => parseNpz(good.subarray(0, good.length - 40), "cut.npz"),
    /cut\.npz has no zip end-of-central-directory record: the file is truncated/,
  );
  assert.throws(
    () => parseNpz(new TextEncoder().encode("hello, this is plainly not a zip archive"), "text.npz"),
    /text\.npz .*not a zip archive/,
  );
  // Corrupt deflate data inside an otherwise intact archive.
  const corrupt = good.slice();
  corrupt.fill(0xff, 60, 200);
  assert.throws(
    () => parseNpz(corrupt, "corrupt.npz"),
    /corrupt\.npz: member \w+\.npy (does not inflate|is \d+ bytes after decompression|has no local zip header)/,
  );
  // An .npy whose data is shorter than its shape needs.
  const short = npyBytes(new Float32Array(6), [2, 3]).subarray(0, 128 + 10);
  assert.throws(
    () => parseNpy(short, "short.npy"),
    /short\.npy is truncated: shape \(2, 3\) of <f4 needs 24 bytes/,
  );
  assert.throws(
    () => parseNpy(new Uint8Array(20), "zeros.npy"),
    /zeros\.npy does not start with the \\x93NUMPY magic/,
  );
  await assert.rejects(readNpz(`${DATA}npz/absent.npz`), /cannot read .*absent\.npz/);
});

Deno.test("npz: our byte-level writer round-trips (it builds the runtime test data)", () => {
  const bytes = npzBytes({
    a: [Int16Array.from([1, -2, 3]), [3]],
    b: [new BigInt64Array([5n, -6n]), [2, 1]],
  });
  const arrays = parseNpz(bytes, "written.npz");
  assert.deepEqual(Array.from(arrays.get("a")!.data as Int16Array), [1, -2, 3]);
  assert.deepEqual(arrays.get("b")!.shape, [2, 1]);
  assert.deepEqual(Array.from(toNumbers(arrays.get("b")!, "b")), [5, -6]);
});

for (const name of ["rgb", "gray", "cmyk"]) {
  Deno.test(`jpeg: ${name} decodes to PIL's RGB pixels`, async () => {
    const image = await decodeJpeg(await Deno.readFile(`${DATA}jpeg/${name}.jpg`), `${name}.jpg`);
    const expected = fixture.ints(`jpeg_${name}`);
    const [height, width] = fixture.shape(`jpeg_${name}`);
    assert.deepEqual([image.height, image.width, image.channels], [height, width, 3]);
    let maxDiff = 0;
    for (let i = 0; i < expected.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(image.data[i] - expected[i]));
    }
    // RGB and grayscale go through libjpeg (MozJPEG) like PIL: identical pixels. CMYK goes through
    // jpeg-js, whose IDCT and upsampling round differently from libjpeg: off by one level here, 2 allowed.
    assert.ok(maxDiff <= (name === "cmyk" ? 2 : 0), `${name}: max difference from PIL ${maxDiff}`);
  });
}

Deno.test("jpeg: an undecodable file is an error naming it, and the decoder still works afterwards", async () => {
  const good = await Deno.readFile(`${DATA}jpeg/rgb.jpg`);
  await assert.rejects(
    decodeJpeg(new Uint8Array(3000).fill(7), "junk.JPEG"),
    /jpeg: junk\.JPEG does not decode/,
  );
  await assert.rejects(decodeJpeg(good.subarray(0, 200), "cut.JPEG"), /jpeg: cut\.JPEG does not decode/);
  const image = await decodeJpeg(good, "rgb.jpg");
  assert.deepEqual(
    Array.from(image.data.subarray(0, 30)),
    Array.from(fixture.ints("jpeg_rgb").subarray(0, 30)),
  );
});
