/**
 * Whether `mpirun` is installed: the MPI tests run only where it is (CI installs MPICH), and otherwise say
 * why they were skipped.
 */
export function mpirunInstalled(testFile: string): boolean {
  let found = false;
  try {
    found = new Deno.Command("mpirun", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    found = false;
  }
  if (!found) console.warn(`${testFile} skipped: mpirun is not installed (apt-get install mpich)`);
  return found;
}
