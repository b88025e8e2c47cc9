/**
 * The house's dependency rules, checked on the source: no file imports one that imports it back (type-only
 * imports included), and imports point down the layer order only. The walk starts at mod.ts, the CLI and
 * pipelines/ and follows every relative `import` / `export ... from` specifier.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** What the entry points (the CLI and mod.ts) may import: everything below them. */
const ENTRY_POINTS_MAY_IMPORT = [
  "dist",
  "pipelines",
  "pipeline",
  "io",
  "sml",
  "optim",
  "data",
  "models",
  "nn",
  "ops",
  "tensor",
  "gpu",
];

/**
 * The layer rule, the one place it is written: what each layer may import besides its own files. Layers
 * only call downward: gpu <- tensor <- ops <- nn <- models <- sml / optim / data <- io <- pipeline <-
 * pipelines <- cli (io reads models: a NIR graph is exported from and imported into one; dist, the MPI
 * job, sits beside io under pipeline). kernels/ (WGSL
 * generators, knowing nothing of SNNs) sits on gpu and is imported only by the layers that dispatch GPU
 * work; data (CPU decoding and augmentation) imports nothing of the GPU side.
 */
export const MAY_IMPORT: Record<string, readonly string[]> = {
  "gpu": [],
  "kernels": ["gpu"],
  "tensor": ["gpu", "kernels"],
  "ops": ["tensor", "gpu", "kernels"],
  "nn": ["ops", "tensor", "gpu", "kernels"],
  "models": ["nn", "ops", "tensor", "gpu"],
  "sml": ["models", "nn", "ops", "tensor", "gpu"],
  "optim": ["nn", "ops", "tensor", "gpu", "kernels"],
  "data": [],
  "io": ["models", "optim", "nn", "tensor", "gpu"],
  "dist": ["io", "nn", "ops", "tensor", "gpu", "kernels"],
  "pipeline": ["dist", "io", "sml", "optim", "data", "models", "nn", "ops", "tensor", "gpu", "kernels"],
  "pipelines": ["dist", "pipeline", "io", "sml", "optim", "data", "models", "nn", "ops", "tensor", "gpu"],
  "cli": ENTRY_POINTS_MAY_IMPORT,
  "mod": ENTRY_POINTS_MAY_IMPORT,
};

/** The layer a repository file belongs to. */
export function layerOf(file: string): string {
  const path = relative(ROOT, file);
  if (path === "mod.ts") return "mod";
  const [top, second] = path.split("/");
  if (top === "src") return second;
  return top;
}

/**
 * Relative specifiers of every module `source` imports: static imports and re-exports (type-only ones
 * included) and dynamic `import("...")`.
 */
export function importSpecifiers(source: string): string[] {
  const patterns = [
    /^\s*(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  return relativeMatches(source, patterns);
}

/**
 * Worker modules `source` starts (`new URL("./x.ts", import.meta.url)`): each runs in its own isolate, so
 * it is walked as an entry point of its own, not as an import (a worker may import its starter's file).
 */
export function workerModules(source: string): string[] {
  return relativeMatches(source, [/\bnew URL\(\s*["']([^"']+\.ts)["']\s*,\s*import\.meta\.url\s*\)/g]);
}

function relativeMatches(source: string, patterns: RegExp[]): string[] {
  const found: string[] = [];
  for (const pattern of patterns) {
    for (const match of source.matchAll(pattern)) {
      if (match[1].startsWith(".") && !found.includes(match[1])) found.push(match[1]);
    }
  }
  return found;
}

async function entryPoints(): Promise<string[]> {
  const files = [join(ROOT, "mod.ts")];
  for (const folder of ["src/cli", "pipelines"]) {
    for await (const entry of Deno.readDir(join(ROOT, folder))) {
      if (entry.isFile && entry.name.endsWith(".ts")) files.push(join(ROOT, folder, entry.name));
    }
  }
  return files.sort();
}

/** file -> the files it imports, for everything reachable from the entry points and the workers they start. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const pending = await entryPoints();
  while (pending.length) {
    const file = pending.pop()!;
    if (graph.has(file)) continue;
    const source = await Deno.readTextFile(file);
    const targets = importSpecifiers(source).map((s) => resolve(dirname(file), s));
    graph.set(file, targets);
    pending.push(...targets, ...workerModules(source).map((s) => resolve(dirname(file), s)));
  }
  return graph;
}

/** Every cycle found by a depth-first walk, each as the files around it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    path.push(file);
    for (const target of graph.get(file) ?? []) {
      if (state.get(target) === "open") found.push([...path.slice(path.indexOf(target)), target]);
      else if (!state.has(target)) visit(target);
    }
    path.pop();
    state.set(file, "done");
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return found;
}

const graph = await importGraph();
const show = (file: string) => relative(ROOT, file);

Deno.test("import graph: the walk reaches the whole library", () => {
  for (const file of ["src/data/worker.ts", "src/data/jpeg.ts"]) {
    assert.ok(graph.has(join(ROOT, file)), `${file} not reached`);
  }
  const layers = new Set([...graph.keys()].map(layerOf));
  for (const layer of Object.keys(MAY_IMPORT)) {
    assert.ok(layers.has(layer), `no file of layer ${layer} reached`);
  }
  assert.ok(graph.size > 80, `only ${graph.size} files reached`);
});

Deno.test("import graph: no file imports one that imports it back (type-only imports included)", () => {
  const found = cycles(graph).map((cycle) => cycle.map(show).join(" -> "));
  assert.deepEqual(found, []);
});

Deno.test("import graph: every import points down the layer order", () => {
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    for (const target of targets) {
      const to = layerOf(target);
      if (to !== from && !MAY_IMPORT[from]?.includes(to)) {
        wrong.push(`${show(file)} (${from}) -> ${show(target)} (${to})`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("import graph: the README's layout table names every layer with the imports MAY_IMPORT allows", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const table = readme.slice(
    readme.indexOf("## What is here"),
    readme.indexOf("\n\n", readme.indexOf("| part")),
  );
  const documented: Record<string, string[]> = {};
  for (const row of table.matchAll(/^\|[^|]+\| `([^`]+)`\s*\|([^|]+)\|$/gm)) {
    const imports = row[2].trim();
    documented[layerOf(join(ROOT, row[1], "x.ts"))] = imports === "-" ? [] : imports.split(/,\s*/);
  }
  const expected = Object.fromEntries(
    Object.entries(MAY_IMPORT).filter(([layer]) => layer !== "mod").map((
      [layer, may],
    ) => [layer, [...may].sort()]),
  );
  const found = Object.fromEntries(Object.entries(documented).map(([layer, may]) => [layer, may.sort()]));
  assert.deepEqual(found, expected);
  for await (const entry of Deno.readDir(join(ROOT, "src"))) {
    if (entry.isDirectory) {
      assert.ok(entry.name in documented, `src/${entry.name}/ is not in the README's table`);
    }
  }
});

Deno.test("import graph: the checks catch a cycle and an upward import", () => {
  assert.deepEqual(
    importSpecifiers(`import type { A } from "./a.ts";\nexport { b } from "../b.ts";\nimport "./c.ts";`),
    [
      "./a.ts",
      "../b.ts",
      "./c.ts",
    ],
  );
  assert.deepEqual(
    importSpecifiers(`import {\n  x,\n  type Y,\n} from "./multi.ts";\nimport z from "npm:z@1";`),
    [
      "./multi.ts",
    ],
  );
  const lazy =
    `const m = await import("./lazy.ts");\nnew Worker(new URL("./worker.ts", import.meta.url).href);`;
  assert.deepEqual(importSpecifiers(lazy), ["./lazy.ts"]);
  assert.deepEqual(workerModules(lazy), ["./worker.ts"]);
  assert.deepEqual(cycles(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]]])), [["a", "b", "c", "a"]]);
  assert.equal(layerOf(join(ROOT, "src/tensor/tensor.ts")), "tensor");
  assert.ok(!MAY_IMPORT.tensor.includes("ops"), "tensor may not import ops");
});
