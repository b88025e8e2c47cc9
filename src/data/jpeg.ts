/**
 * JPEG decoding to RGB. The fast path is @jsquash/jpeg (MozJPEG, a libjpeg-turbo fork, compiled to
 * WebAssembly: about 4x the throughput of pure-JS jpeg-js here, and the same IDCT family as PIL's
 * libjpeg, so pixels match PIL). libjpeg cannot convert CMYK/YCCK to RGB, and the wasm module is left in
 * a bad state after any decode error, so on failure we rebuild the module and retry with jpeg-js,
 * which handles Adobe CMYK/YCCK (converted as PIL does: R = (255 - C)(255 - K) / 255).
 */
import jpegJs from "npm:jpeg-js@^0.4.4";
import decodeWasm, { init as initWasm } from "npm:@jsquash/jpeg@^1.6.0/decode.js";
import type { Image } from "./augment/image.ts";

// The emscripten glue builds an ImageData for its result; Deno has no such global. Only width,
// height and data are read, so a plain record serves.
const globals = globalThis as { ImageData?: unknown };
globals.ImageData ??= class ImageData {
  constructor(readonly data: Uint8ClampedArray, readonly width: number, readonly height: number) {}
};

/** Silences the codec's own stderr lines; the caller reports failures with the file name. */
const QUIET = { print: () => {}, printErr: () => {} };
let wasmReady = false;

function resetWasm() {
  initWasm(QUIET);
  wasmReady = true;
}

function rgbaToRgb(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): Image {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0, i = 0; p < data.length; p += 3, i += 4) {
    data[p] = rgba[i];
    data[p + 1] = rgba[i + 1];
    data[p + 2] = rgba[i + 2];
  }
  return { width, height, channels: 3, data };
}

/** Largest image we agree to decode (guards against corrupt headers asking for gigabytes). */
const MAX_PIXELS = 100_000_000;

/**
 * Decodes JPEG bytes to an RGB image (grayscale is replicated to three channels, CMYK converted).
 * Throws an Error naming `source` when neither decoder can read it.
 */
export async function decodeJpeg(bytes: Uint8Array, source: string): Promise<Image> {
  if (!wasmReady) resetWasm();
  let wasmError: unknown;
  try {
    const decoded = await decodeWasm(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    );
    return rgbaToRgb(decoded.data as Uint8ClampedArray, decoded.width, decoded.height);
  } catch (error) {
    wasmError = error;
    resetWasm();
  }
  try {
    const decoded = jpegJs.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: MAX_PIXELS / 1e6,
      maxMemoryUsageInMB: 2048,
    });
    const { width, height, data } = decoded;
    if (data.length === width * height * 3) return { width, height, channels: 3, data: new Uint8Array(data) };
    if (data.length === width * height) {
      const rgb = new Uint8Array(width * height * 3);
      for (let p = 0; p < width * height; p++) rgb[p * 3] = rgb[p * 3 + 1] = rgb[p * 3 + 2] = data[p];
      return { width, height, channels: 3, data: rgb };
    }
    throw new Error(`decoded ${data.length} bytes for ${width}x${height}, expected RGB`);
  } catch (error) {
    const first = wasmError instanceof Error
      ? wasmError.message
      : String((wasmError as { message?: string })?.message ?? wasmError);
    throw new Error(
      `jpeg: ${source} does not decode (libjpeg: ${first}; jpeg-js: ${(error as Error).message}); ` +
        "expected a baseline or progressive JPEG (truncated or not an image?)",
    );
  }
}
