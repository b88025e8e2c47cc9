/**
 * NumPy's .npy and .npz formats. An .npz is a zip archive of .npy members, stored or deflated
 * (np.savez / np.savez_compressed); we read the zip central directory ourselves and inflate with
 * node:zlib. An .npy is a magic string, a version, a header length, a Python-dict header
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`, then the raw array bytes.
 */
import { inflateRawSync } from "node:zlib";

/** The element types we read, by numpy's name. */
export type NpyDType =
  | "bool"
  | "uint8"
  | "int8"
  | "uint16"
  | "int16"
  | "uint32"
  | "int32"
  | "uint64"
  | "int64"
  | "float32"
  | "float64";

export type NpyData =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigUint64Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

export interface NpyArray {
  dtype: NpyDType;
  shape: number[];
  /** Row-major (C order) elements; 64-bit integers come as BigInt arrays (see `toNumbers`). */
  data: NpyData;
}

/** numpy descr (without byte order) -> our dtype. Byte order is checked separately. */
const DESCRS: Record<string, { dtype: NpyDType; bytes: number }> = {
  b1: { dtype: "bool", bytes: 1 },
  u1: { dtype: "uint8", bytes: 1 },
  i1: { dtype: "int8", bytes: 1 },
  u2: { dtype: "uint16", bytes: 2 },
  i2: { dtype: "int16", bytes: 2 },
  u4: { dtype: "uint32", bytes: 4 },
  i4: { dtype: "int32", bytes: 4 },
  u8: { dtype: "uint64", bytes: 8 },
  i8: { dtype: "int64", bytes: 8 },
  f4: { dtype: "float32", bytes: 4 },
  f8: { dtype: "float64", bytes: 8 },
};

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

function typedArray(dtype: NpyDType, buffer: ArrayBuffer): NpyData {
  switch (dtype) {
    case "bool":
    case "uint8":
      return new Uint8Array(buffer);
    case "int8":
      return new Int8Array(buffer);
    case "uint16":
      return new Uint16Array(buffer);
    case "int16":
      return new Int16Array(buffer);
    case "uint32":
      return new Uint32Array(buffer);
    case "int32":
      return new Int32Array(buffer);
    case "uint64":
      return new BigUint64Array(buffer);
    case "int64":
      return new BigInt64Array(buffer);
    case "float32":
      return new Float32Array(buffer);
    case "float64":
      return new Float64Array(buffer);
  }
}

/** Parses one .npy file's bytes; `source` names it in errors (e.g. "train/a.npz:pos.npy"). */
export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  if (bytes.byteLength < 10 || !NPY_MAGIC.every((b, i) => bytes[i] === b)) {
    throw new Error(`npy: ${source} does not start with the \\x93NUMPY magic: not an .npy array`);
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw new Error(`npy: ${source} is truncated inside its header`);
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new Error(`npy: ${source} has format version ${major}.${bytes[7]}; versions 1-3 are supported`);
  }
  if (headerStart + headerLength > bytes.byteLength) {
    throw new Error(
      `npy: ${source} is truncated: its ${headerLength}-byte header runs past the end of the data`,
    );
  }
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(headerStart, headerStart + headerLength),
  );
  const descrMatch = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortranMatch = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeMatch = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descrMatch || !fortranMatch || !shapeMatch) {
    // A structured dtype's descr is a list, not a string: it lands here too.
    throw new Error(
      `npy: ${source} has a header we cannot read (need a string 'descr', 'fortran_order' and 'shape'; ` +
        `structured dtypes are not supported): ${header.trim()}`,
    );
  }
  const descr = descrMatch[1];
  const byteOrder = descr[0];
  const kind = descr.slice(1);
  const known = DESCRS[kind];
  if (!known || !"<>|=".includes(byteOrder)) {
    throw new Error(
      `npy: ${source} has dtype '${descr}', which is not supported ` +
        `(supported: bool, uint8/int8 to uint64/int64, float32, float64, little-endian)`,
    );
  }
  if (byteOrder === ">" && known.bytes > 1) {
    throw new Error(
      `npy: ${source} has big-endian dtype '${descr}'; re-save it little-endian (arr.astype('<${kind}'))`,
    );
  }
  const shape = shapeMatch[1].split(",").map((s) => s.trim()).filter((s) => s.length > 0).map((s) => {
    const dim = Number(s.replace(/L$/, ""));
    if (!Number.isInteger(dim) || dim < 0) {
      throw new Error(`npy: ${source} has an invalid shape (${shapeMatch[1]})`);
    }
    return dim;
  });
  const count = shape.reduce((a, b) => a * b, 1);
  if (fortranMatch[1] === "True" && shape.filter((d) => d > 1).length > 1) {
    throw new Error(
      `npy: ${source} is stored in Fortran order with shape (${shape.join(", ")}); ` +
        "only C-order arrays are supported (save np.ascontiguousarray(arr))",
    );
  }
  const dataStart = headerStart + headerLength;
  const byteCount = count * known.bytes;
  if (dataStart + byteCount > bytes.byteLength) {
    throw new Error(
      `npy: ${source} is truncated: shape (${shape.join(", ")}) of ${descr} needs ${byteCount} bytes, ` +
        `the file has ${bytes.byteLength - dataStart}`,
    );
  }
  // Copy into a fresh, aligned buffer: member data inside a zip need not be aligned (and a node
  // Buffer's slice() would share its pool instead of copying).
  const copy = new Uint8Array(byteCount);
  copy.set(bytes.subarray(dataStart, dataStart + byteCount));
  return { dtype: known.dtype, shape, data: typedArray(known.dtype, copy.buffer) };
}

/** One member of a zip archive, as the central directory describes it. */
interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

function readCentralDirectory(bytes: Uint8Array, source: string): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The end-of-central-directory record is 22 bytes plus a comment of up to 65535 bytes.
  let eocd = -1;
  for (let i = bytes.byteLength - 22; i >= Math.max(0, bytes.byteLength - 22 - 0xffff); i--) {
    if (view.getUint32(i, true) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    const isZipStart = bytes.byteLength >= 4 && view.getUint32(0, true) === LOCAL_SIGNATURE;
    throw new Error(
      `npz: ${source} has no zip end-of-central-directory record: ` +
        (isZipStart ? "the file is truncated" : "it is not a zip archive (an .npz is one)"),
    );
  }
  const entryCount = view.getUint16(eocd + 10, true);
  const directorySize = view.getUint32(eocd + 12, true);
  const directoryOffset = view.getUint32(eocd + 16, true);
  if (entryCount === 0xffff || directoryOffset === 0xffffffff) {
    throw new Error(`npz: ${source} is a zip64 archive, which is not supported (members over 4 GB)`);
  }
  if (directoryOffset + directorySize > eocd) {
    throw new Error(
      `npz: ${source}: the zip central directory points past its end record: the file is corrupt`,
    );
  }
  const entries: ZipEntry[] = [];
  let p = directoryOffset;
  for (let i = 0; i < entryCount; i++) {
    if (p + 46 > bytes.byteLength || view.getUint32(p, true) !== CENTRAL_SIGNATURE) {
      throw new Error(`npz: ${source}: zip central directory entry ${i} is malformed: the file is corrupt`);
    }
    const method = view.getUint16(p + 10, true);
    const compressedSize = view.getUint32(p + 20, true);
    const size = view.getUint32(p + 24, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    const localHeaderOffset = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLength));
    if (compressedSize === 0xffffffff || size === 0xffffffff || localHeaderOffset === 0xffffffff) {
      throw new Error(`npz: ${source}: member ${name} uses zip64 sizes, which are not supported`);
    }
    entries.push({ name, method, compressedSize, size, localHeaderOffset });
    p += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

function readMember(bytes: Uint8Array, entry: ZipEntry, source: string): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = entry.localHeaderOffset;
  if (at + 30 > bytes.byteLength || view.getUint32(at, true) !== LOCAL_SIGNATURE) {
    throw new Error(
      `npz: ${source}: member ${entry.name} has no local zip header at offset ${at}: the file is corrupt`,
    );
  }
  const dataStart = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  const dataEnd = dataStart + entry.compressedSize;
  if (dataEnd > bytes.byteLength) {
    throw new Error(
      `npz: ${source}: member ${entry.name} runs past the end of the file: the file is truncated`,
    );
  }
  const raw = bytes.subarray(dataStart, dataEnd);
  let data: Uint8Array;
  if (entry.method === 0) {
    data = raw;
  } else if (entry.method === 8) {
    try {
      data = inflateRawSync(raw);
    } catch (error) {
      throw new Error(
        `npz: ${source}: member ${entry.name} does not inflate (${(error as Error).message}): corrupt data`,
      );
    }
  } else {
    throw new Error(
      `npz: ${source}: member ${entry.name} uses zip compression method ${entry.method}; ` +
        "only stored (0) and deflate (8) are supported, as numpy writes",
    );
  }
  if (data.byteLength !== entry.size) {
    throw new Error(
      `npz: ${source}: member ${entry.name} is ${data.byteLength} bytes after decompression, ` +
        `the directory says ${entry.size}: corrupt data`,
    );
  }
  return data;
}

/**
 * Parses an .npz archive's bytes into arrays keyed by name (the member name less ".npy").
 * `keys` limits parsing to those members; a requested key that is absent is an error.
 */
export function parseNpz(bytes: Uint8Array, source: string, keys?: readonly string[]): Map<string, NpyArray> {
  const entries = readCentralDirectory(bytes, source);
  const arrays = new Map<string, NpyArray>();
  for (const entry of entries) {
    const key = entry.name.endsWith(".npy") ? entry.name.slice(0, -4) : entry.name;
    if (keys && !keys.includes(key)) continue;
    arrays.set(key, parseNpy(readMember(bytes, entry, source), `${source}:${entry.name}`));
  }
  for (const key of keys ?? []) {
    if (!arrays.has(key)) {
      throw new Error(
        `npz: ${source} has no array '${key}'; it has ${
          entries.map((e) => e.name.replace(/\.npy$/, "")).join(", ")
        }`,
      );
    }
  }
  return arrays;
}

/** Reads an .npz file from disk (see parseNpz). */
export async function readNpz(path: string, keys?: readonly string[]): Promise<Map<string, NpyArray>> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`npz: cannot read ${path}: ${(error as Error).message}`);
  }
  return parseNpz(bytes, path, keys);
}

/** An array's elements as plain numbers (64-bit integers beyond 2^53 are an error). */
export function toNumbers(
  array: NpyArray,
  source: string,
): Float64Array | Exclude<NpyData, BigInt64Array | BigUint64Array> {
  const { data } = array;
  if (!(data instanceof BigInt64Array || data instanceof BigUint64Array)) return data;
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const value = data[i];
    if (value > 9007199254740991n || value < -9007199254740991n) {
      throw new Error(`npy: ${source}: element ${i} = ${value} does not fit a double exactly`);
    }
    out[i] = Number(value);
  }
  return out;
}
