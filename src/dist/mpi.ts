/**
 * The installed MPI library, called through Deno's FFI: found by its usual sonames (or
 * SPIKEGPU_MPI_LIB), with the handle constants of its ABI. Two ABIs exist:
 *
 * - MPICH and its derivatives (libmpich.so.12, libmpi.so.12: Intel MPI, MVAPICH, Cray MPICH) define
 *   MPI_Comm, MPI_Datatype, MPI_Op and MPI_Info as `int`, with the constants below copied from MPICH's
 *   mpi.h (Debian mpich 4.0), and MPI_IN_PLACE as `(void *) -1`.
 * - Open MPI (libmpi.so.40) defines them as pointers to predefined global objects (`&ompi_mpi_comm_world`
 *   ...), which are looked up with libc's dlsym, and MPI_IN_PLACE as `(void *) 1`.
 *
 * Nothing here runs unless a launcher started this process (see launch.ts): a single-process run never
 * loads MPI.
 */

/** Sonames tried in order when SPIKEGPU_MPI_LIB is not set. */
export const MPI_SONAMES = ["libmpich.so.12", "libmpi.so.12", "libmpi.so.40"] as const;

export type MpiAbi = "mpich" | "openmpi";

type Handle = number | Deno.PointerValue;

/** The predefined handles spikegpu uses, in one ABI's representation. */
interface Constants {
  commWorld: Handle;
  float: Handle;
  double: Handle;
  byte: Handle;
  sum: Handle;
  max: Handle;
  infoNull: Handle;
  inPlace: Deno.PointerValue;
  commTypeShared: number;
}

/**
 * From /usr/include/x86_64-linux-gnu/mpich/mpi.h (MPICH 4.0.2); stable across MPICH's ABI (soname .12).
 * A function, not a constant: making MPI_IN_PLACE's pointer needs the FFI permission, which a process that
 * never joins a job (every single-process run, every script importing mod.ts) is not asked for.
 */
const mpichConstants = (): Constants => ({
  commWorld: 0x44000000,
  float: 0x4c00040a,
  double: 0x4c00080b,
  byte: 0x4c00010d,
  sum: 0x58000003,
  max: 0x58000001,
  infoNull: 0x1c000000,
  inPlace: Deno.UnsafePointer.create(0xffffffffffffffffn),
  commTypeShared: 1,
});

/** Open MPI's predefined objects (mpi.h: `OMPI_PREDEFINED_GLOBAL(type, symbol)`). */
const OPEN_MPI_SYMBOLS = {
  commWorld: "ompi_mpi_comm_world",
  float: "ompi_mpi_float",
  double: "ompi_mpi_double",
  byte: "ompi_mpi_byte",
  sum: "ompi_mpi_op_sum",
  max: "ompi_mpi_op_max",
  infoNull: "ompi_mpi_info_null",
} as const;

function symbols(handle: "i32" | "pointer") {
  return {
    MPI_Init: { parameters: ["pointer", "pointer"], result: "i32" },
    MPI_Initialized: { parameters: ["buffer"], result: "i32" },
    MPI_Finalize: { parameters: [], result: "i32" },
    MPI_Abort: { parameters: [handle, "i32"], result: "i32" },
    MPI_Comm_rank: { parameters: [handle, "buffer"], result: "i32" },
    MPI_Comm_size: { parameters: [handle, "buffer"], result: "i32" },
    MPI_Comm_split_type: { parameters: [handle, "i32", "i32", handle, "buffer"], result: "i32" },
    MPI_Allreduce: { parameters: ["pointer", "buffer", "i32", handle, handle, handle], result: "i32" },
    MPI_Bcast: { parameters: ["buffer", "i32", handle, "i32", handle], result: "i32" },
    MPI_Allgather: {
      parameters: ["buffer", "i32", handle, "buffer", "i32", handle, handle],
      result: "i32",
    },
    MPI_Barrier: { parameters: [handle], result: "i32" },
    MPI_Get_library_version: { parameters: ["buffer", "buffer"], result: "i32" },
  } as const;
}

type MpiSymbols = Deno.DynamicLibrary<ReturnType<typeof symbols>>["symbols"];

/** Elements per MPI call: counts are C ints, so larger arrays go in pieces. */
const MAX_COUNT = 1 << 30;

/** An initialised MPI library: MPI_COMM_WORLD's rank and size, and the collectives spikegpu needs. */
export class Mpi {
  readonly rank: number;
  readonly size: number;
  /** Rank among the processes of this node (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED). */
  readonly localRank: number;
  readonly version: string;
  #finalized = false;

  private constructor(
    readonly path: string,
    readonly abi: MpiAbi,
    private readonly fn: MpiSymbols,
    private readonly c: Constants,
  ) {
    const initialized = new Int32Array(1);
    check("MPI_Initialized", fn.MPI_Initialized(initialized));
    if (!initialized[0]) check("MPI_Init", fn.MPI_Init(null, null));
    const out = new Int32Array(1);
    check("MPI_Comm_rank", fn.MPI_Comm_rank(c.commWorld as never, out));
    this.rank = out[0];
    check("MPI_Comm_size", fn.MPI_Comm_size(c.commWorld as never, out));
    this.size = out[0];
    const node = abi === "mpich" ? new Int32Array(1) : new BigUint64Array(1);
    check(
      "MPI_Comm_split_type",
      fn.MPI_Comm_split_type(
        c.commWorld as never,
        c.commTypeShared,
        this.rank,
        c.infoNull as never,
        node,
      ),
    );
    const nodeComm = abi === "mpich" ? node[0] as number : Deno.UnsafePointer.create(node[0] as bigint);
    check("MPI_Comm_rank", fn.MPI_Comm_rank(nodeComm as never, out));
    this.localRank = out[0];
    const text = new Uint8Array(8192);
    check("MPI_Get_library_version", fn.MPI_Get_library_version(text, out));
    this.version = new TextDecoder().decode(text.subarray(0, out[0])).split("\n")[0].replace(/\s+/g, " ")
      .trim();
  }

  /**
   * Loads and initialises MPI: SPIKEGPU_MPI_LIB when set, else the first of MPI_SONAMES the dynamic
   * loader finds. The error names every path tried and why each failed.
   */
  static load(): Mpi {
    const override = Deno.env.get("SPIKEGPU_MPI_LIB");
    const candidates = override ? [override] : [...MPI_SONAMES];
    const failures: string[] = [];
    for (const path of candidates) {
      const abi = abiOf(path);
      let library: Deno.DynamicLibrary<ReturnType<typeof symbols>>;
      try {
        library = Deno.dlopen(path, symbols(abi === "mpich" ? "i32" : "pointer"));
      } catch (error) {
        failures.push(`${path} (${firstLine((error as Error).message)})`);
        continue;
      }
      const constants = abi === "mpich" ? mpichConstants() : openMpiConstants(path);
      return new Mpi(path, abi, library.symbols, constants);
    }
    const where = override ? "SPIKEGPU_MPI_LIB" : "the dynamic loader's search path";
    throw new Error(
      `MPI: no MPI library could be loaded from ${where}; tried ${failures.join(", ")}. Install MPICH ` +
        "(Debian/Ubuntu: apt-get install mpich libmpich-dev) or Open MPI, or set SPIKEGPU_MPI_LIB to the " +
        "path of libmpich.so / libmpi.so",
    );
  }

  /** In-place element-wise reduction of `data` over all ranks. */
  allreduce(data: Float32Array | Float64Array, op: "sum" | "max" = "sum"): void {
    const type = data instanceof Float32Array ? this.c.float : this.c.double;
    const reduce = op === "sum" ? this.c.sum : this.c.max;
    for (let start = 0; start < data.length; start += MAX_COUNT) {
      const part = data.subarray(start, Math.min(data.length, start + MAX_COUNT));
      check(
        "MPI_Allreduce",
        this.fn.MPI_Allreduce(
          this.c.inPlace,
          part,
          part.length,
          type as never,
          reduce as never,
          this.c.commWorld as never,
        ),
      );
    }
  }

  /** Overwrites `data` on every rank with `root`'s bytes. */
  broadcast(data: Uint8Array, root = 0): void {
    for (let start = 0; start < data.length; start += MAX_COUNT) {
      const part = data.subarray(start, Math.min(data.length, start + MAX_COUNT));
      check(
        "MPI_Bcast",
        this.fn.MPI_Bcast(part, part.length, this.c.byte as never, root, this.c.commWorld as never),
      );
    }
  }

  /** Every rank's `data` (all the same length), concatenated in rank order. */
  allgather(data: Uint8Array): Uint8Array {
    const all = new Uint8Array(data.length * this.size);
    check(
      "MPI_Allgather",
      this.fn.MPI_Allgather(
        data,
        data.length,
        this.c.byte as never,
        all,
        data.length,
        this.c.byte as never,
        this.c.commWorld as never,
      ),
    );
    return all;
  }

  barrier(): void {
    check("MPI_Barrier", this.fn.MPI_Barrier(this.c.commWorld as never));
  }

  /** Ends every process of the job (the launcher kills the others) with `code`. */
  abort(code: number): never {
    this.fn.MPI_Abort(this.c.commWorld as never, code);
    // MPI_Abort does not return; should an implementation return anyway, still end this process.
    Deno.exit(code);
  }

  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    check("MPI_Finalize", this.fn.MPI_Finalize());
  }
}

/** The ABI a library path implies: Open MPI's soname is libmpi.so.40 (libmpi.so.12 is MPICH's ABI). */
function abiOf(path: string): MpiAbi {
  const forced = Deno.env.get("SPIKEGPU_MPI_ABI");
  if (forced === "mpich" || forced === "openmpi") return forced;
  if (forced) {
    throw new Error(`SPIKEGPU_MPI_ABI: got ${JSON.stringify(forced)}, expected mpich or openmpi`);
  }
  return /libmpi\.so\.4\d/.test(path) || /open-?mpi/i.test(path) ? "openmpi" : "mpich";
}

/** Open MPI's handles: the addresses of its predefined objects, from dlsym on the already loaded library. */
function openMpiConstants(path: string): Constants {
  const libc = Deno.dlopen("libc.so.6", {
    dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
    dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
  });
  const cString = (text: string) => new TextEncoder().encode(text + "\0");
  const RTLD_NOW_NOLOAD = 0x2 | 0x4;
  const handle = libc.symbols.dlopen(cString(path), RTLD_NOW_NOLOAD);
  if (!handle) throw new Error(`MPI: ${path} was loaded but dlopen(RTLD_NOLOAD) cannot find it again`);
  const address = (symbol: string) => {
    const pointer = libc.symbols.dlsym(handle, cString(symbol));
    if (!pointer) {
      throw new Error(
        `MPI: ${path} has no symbol ${symbol}; expected Open MPI (libmpi.so.40). For an MPICH-ABI ` +
          "library under another name set SPIKEGPU_MPI_ABI=mpich",
      );
    }
    return pointer;
  };
  const found = Object.fromEntries(
    Object.entries(OPEN_MPI_SYMBOLS).map(([key, symbol]) => [key, address(symbol)]),
  ) as Record<keyof typeof OPEN_MPI_SYMBOLS, Deno.PointerValue>;
  return { ...found, inPlace: Deno.UnsafePointer.create(1n), commTypeShared: 0 };
}

function check(call: string, code: number): void {
  // The default error handler (MPI_ERRORS_ARE_FATAL) aborts the job first; this catches the others.
  if (code !== 0) throw new Error(`MPI: ${call} failed with error code ${code}`);
}

function firstLine(text: string): string {
  return text.split("\n")[0];
}
