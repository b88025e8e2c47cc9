/**
 * The kinds of value a run option holds, each one reader for both places a value comes from: flag text
 * on the command line ("0.01", "3,3", "753,31") and typed values in a script (0.01, [3, 3], [[7, 5, 3]]).
 * A reader returns the typed value or throws an `Expected` saying what it wanted; the option table adds
 * the option's name to the message.
 */

/** A value did not fit its kind; `expected` completes "expected ...". */
export class Expected extends Error {
  constructor(readonly expected: string) {
    super(`expected ${expected}`);
  }
}

/** How an option reads its value; `flag` is the command line's type for it. */
export interface OptionKind<T> {
  /** "boolean": a flag without a value; "string": a flag with one. */
  readonly flag: "string" | "boolean";
  /** The typed value of flag text or a script's value, or throws an `Expected`. */
  read(value: unknown): T;
}

function numberFrom(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string" && value.trim() !== "") return Number(value);
  return NaN;
}

/** A whole number >= `min`. */
export function wholeNumber(min: number): OptionKind<number> {
  return {
    flag: "string",
    read(value) {
      const n = numberFrom(value);
      if (!Number.isInteger(n) || n < min) throw new Expected(`a whole number >= ${min}`);
      return n;
    },
  };
}

/** A finite number in [min, max]; `min` = Number.MIN_VALUE reads as "> 0". */
export function real(min: number, max = Infinity): OptionKind<number> {
  const lower = min === Number.MIN_VALUE ? "> 0" : `>= ${min}`;
  const expected = max === Infinity ? `a number ${lower}` : `a number in [${min}, ${max}]`;
  return {
    flag: "string",
    read(value) {
      const n = numberFrom(value);
      if (!Number.isFinite(n) || n < min || n > max) throw new Expected(expected);
      return n;
    },
  };
}

/** One of `options` (listed in the message). */
export function oneOf<T extends string>(options: readonly T[]): OptionKind<T> {
  return {
    flag: "string",
    read(value) {
      if (!(options as readonly unknown[]).includes(value)) {
        throw new Expected(`one of ${options.join(", ")}`);
      }
      return value as T;
    },
  };
}

/** Any text (paths, names checked where they are used). */
export const text: OptionKind<string> = {
  flag: "string",
  read(value) {
    if (typeof value !== "string") throw new Expected("text");
    return value;
  },
};

/** On or off; on the command line, a flag without a value. */
export const toggle: OptionKind<boolean> = {
  flag: "boolean",
  read(value) {
    if (typeof value !== "boolean") throw new Expected("true or false");
    return value;
  },
};

/** The parts of "a,b,c" (trimmed), or the array a script gives. */
function listFrom(value: unknown): unknown[] {
  return typeof value === "string"
    ? value.split(",").map((s) => s.trim())
    : Array.isArray(value)
    ? value
    : [];
}

/** Whole numbers >= 1, "3,3" or [3, 3]: blocks between surrogate modules. */
export const positions: OptionKind<number[]> = {
  flag: "string",
  read(value) {
    const parts = listFrom(value);
    const places = parts.map((s) => typeof s === "string" && /^\d+$/.test(s) ? Number(s) : s);
    if (parts.length === 0 || !places.every((n) => typeof n === "number" && Number.isInteger(n) && n >= 1)) {
      throw new Expected("comma-separated whole numbers >= 1 (blocks between modules)");
    }
    return places as number[];
  },
};

/** Groups of module kernel sizes, "753,31" or [[7, 5, 3], [3, 1]]. */
export const kernelGroups: OptionKind<number[][]> = {
  flag: "string",
  read(value) {
    const groups = listFrom(value).map((group) => typeof group === "string" ? [...group].map(Number) : group);
    const valid = (group: unknown) =>
      Array.isArray(group) && group.length > 0 &&
      group.every((k) => k === 7 || k === 5 || k === 3 || k === 1);
    if (groups.length === 0 || !groups.every(valid)) {
      throw new Expected("comma-separated groups of the digits 7, 5, 3, 1");
    }
    return groups as number[][];
  },
};

/** Names from `options`, "a,b" or ["a", "b"]; `alone` may only appear by itself. */
export function namesOf<T extends string>(options: readonly T[], alone: T): OptionKind<T[]> {
  const name = oneOf(options);
  return {
    flag: "string",
    read(value) {
      const parts = listFrom(value).map((part) => name.read(part));
      if (parts.length === 0) throw new Expected(`one of ${options.join(", ")}`);
      if (parts.includes(alone) && parts.length > 1) {
        throw new Expected(`${alone} alone, or a list without ${alone}`);
      }
      return parts;
    },
  };
}
