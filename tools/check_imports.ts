/**
 * `deno task check` step: every module reachable from the package's entry points resolves with no import
 * map (`deno info --no-config`, as a script that imports spikegpu by URL sees it). Exits 1 and lists each
 * unresolved or missing import otherwise. The loader's worker is a root of its own: it is started by URL
 * (`new URL("./worker.ts", import.meta.url)`), which `deno info` does not follow.
 *
 * @module
 */

/** The modules a user starts from: the library, the CLI entry points and the data loader's worker. */
const ROOTS = ["mod.ts", "src/cli/train.ts", "src/cli/report.ts", "src/data/worker.ts"];

interface Resolution {
  specifier?: string;
  error?: string;
}

interface InfoModule {
  specifier: string;
  error?: string;
  dependencies?: { specifier: string; code?: Resolution; type?: Resolution }[];
}

/** The problems `deno info --no-config --json` reports for one root, one line each. */
async function unresolved(root: string): Promise<string[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--no-config", "--json", root],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) return [`${root}: deno info failed: ${new TextDecoder().decode(stderr).trim()}`];
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as { modules: InfoModule[] };
  const problems: string[] = [];
  for (const module of graph.modules) {
    if (module.error) problems.push(`${module.specifier}: ${module.error}`);
    for (const dependency of module.dependencies ?? []) {
      for (const resolution of [dependency.code, dependency.type]) {
        if (resolution?.error) problems.push(`${module.specifier}: ${resolution.error}`);
      }
    }
  }
  return problems;
}

const problems = [...new Set((await Promise.all(ROOTS.map(unresolved))).flat())];
if (problems.length > 0) {
  console.error(`imports that do not resolve without an import map:\n  ${problems.join("\n  ")}`);
  Deno.exit(1);
}
console.log(`imports: all resolve without an import map (${ROOTS.join(", ")})`);
