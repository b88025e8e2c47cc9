/**
 * The package version, the one source of truth: deno.json's "version" must agree (tests/version.test.ts),
 * and `train --version` prints it.
 *
 * @module
 */

/** spikegpu's version (semver), as published in deno.json. */
export const VERSION = "0.1.0";
