/**
 * Byte-level writers for test data the oracle need not produce: .npy / .npz (stored zip, valid CRCs,
 * readable by numpy), CIFAR binary records, temporary folders.
 */

export type WritableArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array;

const DESCR: [new (...args: never[]) => WritableArray, string][] = [
  [Uint8Array, "|u1"],
  [Int8Array, "|i1"],
  [Int16Array, "<i2"],
  [Uint16Array, "<u2"],
  [Int32Array, "<i4"],
  [Uint32Array, "<u4"],
  [Float32Array, "<f4"],
  [Float64Array, "<f8"],
  [BigInt64Array, "<i8"],
];

/** An .npy v1.0 file; `descr` overrides the dtype written in the header (to fake unsupported ones). */
export function npyBytes(data: WritableArray, shape: number[], descr?: string): Uint8Array {
  const type = descr ?? DESCR.find(([ctor]) => data instanceof ctor)![1];
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '${type}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const headerBytes = new TextEncoder().encode(header);
  const out = new Uint8Array(10 + headerBytes.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, headerBytes.length, true);
  out.set(headerBytes, 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + headerBytes.length);
  return out;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A stored (uncompressed) zip of the given members, as np.savez writes. */
export function zipBytes(members: Record<string, Uint8Array>): Uint8Array {
  const encoder = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(members)) {
    const nameBytes = encoder.encode(name);
    const crc = crc32(data);
    const local = new Uint8Array(30 + nameBytes.length + data.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);
    local.set(data, 30 + nameBytes.length);
    const central = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    central.set(nameBytes, 46);
    locals.push(local);
    centrals.push(central);
    offset += local.length;
  }
  const centralSize = centrals.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, centrals.length, true);
  ev.setUint16(10, centrals.length, true);
  ev.setUint32(12, centralSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + centralSize + 22);
  let at = 0;
  for (const part of [...locals, ...centrals, end]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** An .npz of named arrays with their shapes. */
export function npzBytes(arrays: Record<string, [WritableArray, number[]]>): Uint8Array {
  return zipBytes(
    Object.fromEntries(
      Object.entries(arrays).map(([k, [data, shape]]) => [`${k}.npy`, npyBytes(data, shape)]),
    ),
  );
}

/** CIFAR binary records: each = label bytes then 3072 pixel bytes (R plane, G plane, B plane). */
export function cifarRecords(records: { labels: number[]; pixels: Uint8Array }[]): Uint8Array {
  const size = records[0].labels.length + 3072;
  const out = new Uint8Array(records.length * size);
  records.forEach((r, i) => {
    out.set(r.labels, i * size);
    out.set(r.pixels, i * size + r.labels.length);
  });
  return out;
}

/** Deterministic pixels for record `seed`. */
export function cifarPixels(seed: number): Uint8Array {
  return Uint8Array.from({ length: 3072 }, (_, i) => (i * 31 + seed * 97 + ((i * i) >> 5)) & 0xff);
}

export async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spikegpu_data_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export function writeFile(path: string, bytes: Uint8Array | string) {
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof bytes === "string") Deno.writeTextFileSync(path, bytes);
  else Deno.writeFileSync(path, bytes);
}
