/**
 * Writes that never leave a half-written file where a good one was: temp file, fsync, rename. A writer
 * killed mid-write leaves only its temp file (`.<name>.<pid>.<time>.tmp`, never read as the file itself),
 * and the next write of the same file removes it.
 */
import { basename, dirname, join } from "node:path";

/** Temp files of a writer that may still be running on a system without /proc are kept this long. */
const STALE_AFTER_MS = 60 * 60 * 1000;

export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await removeStaleTemps(path);
  const temp = join(dirname(path), `.${basename(path)}.${Deno.pid}.${Date.now()}.tmp`);
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(temp, { write: true, create: true, truncate: true });
    let written = 0;
    while (written < bytes.byteLength) written += await file.write(bytes.subarray(written));
    await file.sync();
    file.close();
    file = undefined;
    await Deno.rename(temp, path);
  } catch (error) {
    file?.close();
    await Deno.remove(temp).catch(() => {});
    throw new Error(
      `cannot write ${path}: ${(error as Error).message}; any previous ${basename(path)} is untouched`,
    );
  }
  // Make the rename itself durable.
  try {
    const directory = await Deno.open(dirname(path), { read: true });
    await directory.sync().catch(() => {});
    directory.close();
  } catch {
    // Some file systems do not allow opening a directory; the rename is still atomic.
  }
}

/** Removes the temp files of `path` whose writer is gone (killed mid-write); never this process's own. */
async function removeStaleTemps(path: string): Promise<void> {
  const prefix = `.${basename(path)}.`;
  try {
    for await (const entry of Deno.readDir(dirname(path))) {
      if (!entry.isFile || !entry.name.startsWith(prefix)) continue;
      const match = /^(\d+)\.\d+\.tmp$/.exec(entry.name.slice(prefix.length));
      const pid = Number(match?.[1]);
      if (!match || pid === Deno.pid) continue;
      const temp = join(dirname(path), entry.name);
      if (!(await writerGone(pid, temp))) continue;
      await Deno.remove(temp).catch(() => {});
    }
  } catch {
    // A folder that cannot be listed fails the write itself, with a better message.
  }
}

async function writerGone(pid: number, temp: string): Promise<boolean> {
  if (Deno.build.os === "linux") return !(await Deno.stat(`/proc/${pid}`).then(() => true, () => false));
  const modified = (await Deno.stat(temp)).mtime?.getTime() ?? 0;
  return Date.now() - modified > STALE_AFTER_MS;
}
