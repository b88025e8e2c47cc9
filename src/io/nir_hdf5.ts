/**
 * NIR graphs to and from HDF5 bytes in the layout of the `nir` Python package's `nir.write`: a root
 * `version` string and a `node` group holding the graph (`type`, `nodes/<name>/<field>`, `edges` as an
 * (E, 2) string array, `metadata/<key>`). Strings are variable-length UTF-8 as h5py writes them; arrays
 * are gzip-compressed like h5py's. HDF5 itself is the npm `h5wasm` package (HDF5 compiled to WebAssembly,
 * its wasm embedded in the ES module), loaded on first use so importing spikegpu does not pay for it.
 */
import type { NirGraph, NirNode } from "./nir_graph.ts";

type H5 = typeof import("npm:h5wasm@^0.10.3");
type Group = InstanceType<H5["Group"]>;

let loaded: Promise<{ h5: H5; fs: NonNullable<H5["FS"]> }> | undefined;

/** h5wasm and its in-memory file system (files are built there, then copied out). */
function h5wasm() {
  loaded ??= (async () => {
    // deno-lint-ignore no-import-prefix -- the house rule: npm: specifiers, no import map
    const h5 = await import("npm:h5wasm@^0.10.3");
    const module = await h5.ready;
    return { h5, fs: module.FS as NonNullable<H5["FS"]> };
  })();
  return loaded;
}

let files = 0;
const scratchPath = () => `/spikegpu-nir-${files++}.h5`;

/** The bytes of an HDF5 file holding `graph` as `nir.write` lays it out, under NIR `version`. */
export async function encodeNir(graph: NirGraph, version: string): Promise<Uint8Array> {
  const { h5, fs } = await h5wasm();
  const path = scratchPath();
  // HDF5 1.10's object formats (read by any HDF5 since 2016, h5py included) index a single-chunk
  // dataset without a B-tree: a third of the size of the 1.8 formats for graphs of many small nodes.
  const file = new h5.File(path, "w", { libver: "v110" });
  try {
    file.create_dataset({ name: "version", data: version });
    const root = file.create_group("node");
    root.create_dataset({ name: "type", data: "NIRGraph" });
    root.create_dataset({ name: "edges", data: graph.edges.flat(), shape: [graph.edges.length, 2] });
    const nodes = root.create_group("nodes");
    for (const [name, node] of graph.nodes) writeNode(nodes.create_group(name), node);
    const metadata = Object.entries(graph.metadata);
    if (metadata.length > 0) {
      const group = root.create_group("metadata");
      for (const [key, value] of metadata) {
        group.create_dataset(
          typeof value === "string" ? { name: key, data: value } : {
            name: key,
            data: Number.isInteger(value) ? BigInt64Array.of(BigInt(value)) : Float64Array.of(value),
            shape: [],
          },
        );
      }
    }
  } finally {
    file.close();
  }
  try {
    return fs.readFile(path) as Uint8Array;
  } finally {
    fs.unlink(path);
  }
}

function writeNode(group: Group, node: NirNode): void {
  for (const [field, value] of Object.entries(node)) {
    if (typeof value === "string") {
      group.create_dataset({ name: field, data: value });
      continue;
    }
    // h5py compresses every array but scalars (HDF5 cannot chunk a scalar).
    const compress = value.shape.length > 0 && value.data.length > 0;
    group.create_dataset({
      name: field,
      data: value.data,
      shape: value.shape,
      ...(compress ? { chunks: value.shape, compression: "gzip" as const } : {}),
    });
  }
}

/** Reads a graph written by `encodeNir` or by `nir.write` (fields of the node types spikegpu maps). */
export async function decodeNir(
  bytes: Uint8Array,
  source: string,
): Promise<{ version: string; graph: NirGraph }> {
  const { h5, fs } = await h5wasm();
  const path = scratchPath();
  fs.writeFile(path, bytes);
  let file: InstanceType<H5["File"]> | undefined;
  try {
    try {
      file = new h5.File(path, "r");
    } catch (error) {
      throw new Error(`nir: ${source} is not an HDF5 file (${(error as Error).message})`);
    }
    const version = file.get("version");
    const root = file.get("node");
    if (!(version instanceof h5.Dataset) || !(root instanceof h5.Group)) {
      throw new Error(`nir: ${source} is HDF5 but not a NIR graph (no "version" and "node")`);
    }
    const type = root.get("type");
    if (!(type instanceof h5.Dataset) || type.value !== "NIRGraph") {
      throw new Error(`nir: ${source}: the root node is not a NIRGraph`);
    }
    const edgesValue = (root.get("edges") as InstanceType<H5["Dataset"]> | null)?.value;
    const flat = Array.isArray(edgesValue) ? (edgesValue as string[]) : [];
    const edges: [string, string][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) edges.push([flat[i], flat[i + 1]]);
    const nodes = new Map<string, NirNode>();
    const nodeGroup = root.get("nodes");
    if (nodeGroup instanceof h5.Group) {
      for (const name of nodeGroup.keys()) {
        nodes.set(name, readNode(h5, nodeGroup.get(name) as Group, source));
      }
    }
    const metadata: Record<string, string | number> = {};
    const metaGroup = root.get("metadata");
    if (metaGroup instanceof h5.Group) {
      for (const key of metaGroup.keys()) {
        const value = (metaGroup.get(key) as InstanceType<H5["Dataset"]>).value;
        metadata[key] = typeof value === "string" ? value : Number(value as number | bigint);
      }
    }
    return { version: String(version.value), graph: { nodes, edges, metadata } };
  } finally {
    file?.close();
    fs.unlink(path);
  }
}

function readNode(h5: H5, group: Group, source: string): NirNode {
  const node: NirNode = {};
  for (const field of group.keys()) {
    const dataset = group.get(field);
    if (!(dataset instanceof h5.Dataset)) continue; // metadata and nested graphs are not read
    const value = dataset.value;
    const shape = dataset.shape ?? [];
    if (typeof value === "string") node[field] = value;
    else if (value instanceof Float32Array) node[field] = { dtype: "f32", shape, data: value };
    else if (value instanceof Float64Array) node[field] = { dtype: "f64", shape, data: value };
    else if (value instanceof BigInt64Array) node[field] = { dtype: "i64", shape, data: value };
    else if (value instanceof Int32Array) {
      node[field] = { dtype: "i64", shape, data: BigInt64Array.from(value, (v) => BigInt(v)) };
    } else if (typeof value === "bigint") {
      node[field] = { dtype: "i64", shape, data: BigInt64Array.of(value) };
    } else if (typeof value === "number") node[field] = { dtype: "f64", shape, data: Float64Array.of(value) };
    else {
      throw new Error(`nir: ${source}: ${group.path}/${field} has a type spikegpu does not read`);
    }
  }
  return node;
}
