/**
 * Plumbing of the bad-input matrix: the `train` CLI in a subprocess, file-tree snapshots (nothing added,
 * nothing changed), and the checks every case makes on an error message: it names the file or flag and
 * says what was expected. Set BAD_INPUT_TABLE=<file> to collect every case as a markdown table row.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** The tiny configuration of tests/cli_train.test.ts: a 3-layer plain CNN of width 4 with two modules. */
export { TINY_CLI as TINY } from "../helpers.ts";

export async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spikegpu_bad_input_" });
  try {
    await run(dir);
  } finally {
    // A read-only folder made by a case must be writable again to be removed.
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) await Deno.chmod(join(dir, entry.name), 0o755);
    }
    await Deno.remove(dir, { recursive: true });
  }
}

async function digest(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every file (by content hash) and folder (trailing "/") under `root`, by relative path. */
export async function snapshot(root: string): Promise<Map<string, string>> {
  const tree = new Map<string, string>();
  const walk = async (dir: string, prefix: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const key = prefix + entry.name;
      if (entry.isDirectory) {
        tree.set(`${key}/`, "folder");
        await walk(join(dir, entry.name), `${key}/`);
      } else {
        tree.set(key, await digest(await Deno.readFile(join(dir, entry.name))));
      }
    }
  };
  await walk(root, "");
  return tree;
}

/**
 * Checks that the tree under `root` differs from `before` only by the `added` paths: no temp or partial
 * file left behind, and every file that existed (checkpoints, exports, data) is byte-identical.
 */
export async function assertTreeUnchanged(
  root: string,
  before: Map<string, string>,
  label: string,
  added: string[] = [],
): Promise<void> {
  const after = await snapshot(root);
  const leftovers = [...after.keys()].filter((k) => /\.(tmp|probe)$/.test(k));
  assert.deepEqual(leftovers, [], `${label}: temporary files left behind`);
  assert.deepEqual(
    [...after.keys()].filter((k) => !before.has(k)).sort(),
    [...added].sort(),
    `${label}: files or folders created`,
  );
  const changed = [...before].filter(([k, hash]) => after.get(k) !== hash).map(([k]) => k);
  assert.deepEqual(changed, [], `${label}: existing files changed or removed`);
}

/** The message must name `subject` (a path or a flag) and state the expectation `expected`. */
export function assertMessage(message: string, subject: string, expected: RegExp, label: string): void {
  assert.ok(message.includes(subject), `${label}: "${message}" does not name ${subject}`);
  assert.match(message, expected, `${label}: "${message}" does not say what was expected`);
}

const TABLE = Deno.env.get("BAD_INPUT_TABLE");

/** Appends the case to the BAD_INPUT_TABLE file, when that is set. */
export async function note(label: string, input: string, message: string, result = "pass"): Promise<void> {
  if (!TABLE) return;
  const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ").trim();
  await Deno.writeTextFile(
    TABLE,
    `| ${cell(label)} | ${cell(input)} | ${cell(message)} | ${result} |\n`,
    { append: true },
  );
}

/**
 * Runs `attempt`, which must throw; checks the message names `subject` and states `expected`, and that
 * nothing under `root` was created or changed.
 */
export async function expectRejection(options: {
  label: string;
  input: string;
  root: string;
  attempt: () => unknown;
  subject: string;
  expected: RegExp;
}): Promise<string> {
  const before = await snapshot(options.root);
  let message: string | undefined;
  try {
    await options.attempt();
  } catch (error) {
    assert.ok(error instanceof Error, `${options.label}: threw a non-Error ${String(error)}`);
    assert.equal(error.constructor, Error, `${options.label}: a raw ${error.name}: ${error.message}`);
    message = error.message;
  }
  assert.ok(message !== undefined, `${options.label}: no error`);
  assertMessage(message, options.subject, options.expected, options.label);
  await assertTreeUnchanged(options.root, before, options.label);
  await note(options.label, options.input, message);
  return message;
}

/** Runs `deno run src/cli/train.ts args` in `cwd`; stdout and stderr together. */
export async function runTrain(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--config",
      join(REPO, "deno.json"),
      join(REPO, "src/cli/train.ts"),
      ...args,
    ],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const { code, stdout, stderr } = await command.output();
  return { code, out: new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr) };
}

/**
 * Runs the CLI in `cwd`, which must fail: non-zero exit, an `error:` line naming `subject` and stating
 * `expected`, and no file under `cwd` created or changed (the default run folder lands there too) except
 * the `added` paths. Returns the whole output.
 */
export async function expectCliFailure(options: {
  label: string;
  cwd: string;
  args: string[];
  /** How the table describes the input. */
  input: string;
  subject: string;
  expected: RegExp;
  added?: string[];
}): Promise<string> {
  const before = await snapshot(options.cwd);
  const { code, out } = await runTrain(options.args, options.cwd);
  assert.notEqual(code, 0, `${options.label}: exit code 0\n${out}`);
  const error = out.split("\n").find((line) => line.startsWith("error: "));
  assert.ok(error, `${options.label}: no "error:" line in\n${out}`);
  assertMessage(error, options.subject, options.expected, options.label);
  await assertTreeUnchanged(options.cwd, before, options.label, options.added);
  await note(options.label, options.input, `${error} (exit ${code})`);
  return out;
}

/** A folder this process cannot write to, or null where permissions do not block writes (root). */
export async function readOnlyFolder(root: string): Promise<string | null> {
  const folder = join(root, "read-only");
  await Deno.mkdir(folder);
  await Deno.chmod(folder, 0o555);
  try {
    await Deno.writeTextFile(join(folder, "probe"), "");
  } catch {
    return folder;
  }
  await Deno.remove(join(folder, "probe"));
  await Deno.chmod(folder, 0o755);
  await Deno.remove(folder);
  return null;
}
