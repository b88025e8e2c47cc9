/** Writes that never leave a half-written file where a good one was: temp file, fsync, rename. */
import { basename, dirname, join } from "node:path";

export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
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
