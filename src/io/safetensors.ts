/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping names to
 * `{dtype, shape, data_offsets}`, then the raw little-endian tensor bytes.
 */

export type SafetensorsDType = "F32" | "F16" | "I64" | "I32" | "U8" | "I8" | "BOOL" | "F64";

/** A tensor read from or written to safetensors. */
export interface NamedArray {
  /** Element type. */
  dtype: SafetensorsDType;
  /** Shape. */
  shape: number[];
  /** F32 -> Float32Array, F64 -> Float64Array, I64 -> BigInt64Array, I32 -> Int32Array, F16 -> Uint16Array. */
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint16Array | Uint8Array | Int8Array;
}

const ELEMENT_BYTES: Record<SafetensorsDType, number> = {
  F32: 4,
  F16: 2,
  I64: 8,
  I32: 4,
  U8: 1,
  I8: 1,
  BOOL: 1,
  F64: 8,
};

function typedView(dtype: SafetensorsDType, bytes: Uint8Array): NamedArray["data"] {
  // Copy to an aligned buffer: the data section need not be aligned for the element type.
  const buffer = bytes.slice().buffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buffer);
    case "F64":
      return new Float64Array(buffer);
    case "I64":
      return new BigInt64Array(buffer);
    case "I32":
      return new Int32Array(buffer);
    case "F16":
      return new Uint16Array(buffer);
    case "I8":
      return new Int8Array(buffer);
    case "U8":
    case "BOOL":
      return new Uint8Array(buffer);
  }
}

/** Parses a safetensors file's bytes; `source` names the file in errors. */
export function parseSafetensors(bytes: Uint8Array, source: string): Map<string, NamedArray> {
  if (bytes.byteLength < 8) {
    throw new Error(`safetensors: ${source} is ${bytes.byteLength} bytes, too short for a header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.byteLength) {
    throw new Error(
      `safetensors: ${source}: header length ${headerLength} runs past the end of the ${bytes.byteLength}-byte file ` +
        "(truncated or not a safetensors file)",
    );
  }
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    throw new Error(`safetensors: ${source}: the header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new Error(`safetensors: ${source}: the header is not a JSON object`);
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, NamedArray>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const dtype = entry?.dtype as SafetensorsDType;
    if (!(dtype in ELEMENT_BYTES)) {
      throw new Error(`safetensors: ${source}: tensor ${name} has unsupported dtype ${entry?.dtype}`);
    }
    const shape = entry.shape;
    const [begin, end] = entry.data_offsets ?? [];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`safetensors: ${source}: tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(begin) || !Number.isInteger(end) || end - begin !== count * ELEMENT_BYTES[dtype]) {
      throw new Error(
        `safetensors: ${source}: tensor ${name} [${
          shape.join(", ")
        }] ${dtype} has data offsets ${begin}..${end}, ` +
          `expected ${count * ELEMENT_BYTES[dtype]} bytes`,
      );
    }
    if (dataStart + end > bytes.byteLength) {
      throw new Error(`safetensors: ${source}: tensor ${name} runs past the end of the file (truncated)`);
    }
    tensors.set(name, {
      dtype,
      shape,
      data: typedView(dtype, bytes.subarray(dataStart + begin, dataStart + end)),
    });
  }
  return tensors;
}

/** Reads every tensor of a safetensors file, by name. */
export async function readSafetensors(path: string): Promise<Map<string, NamedArray>> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`safetensors: cannot read ${path}: ${(error as Error).message}`);
  }
  return parseSafetensors(bytes, path);
}

/** Serialises tensors in insertion order. */
export function encodeSafetensors(tensors: Iterable<[string, NamedArray]>): Uint8Array {
  const header: Record<string, unknown> = {};
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, { dtype, shape, data }] of tensors) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.byteLength] };
    parts.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data section starts 8-byte aligned, as the reference writer does.
  json += " ".repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}
