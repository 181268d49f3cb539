// Shared pieces of the fuzz suites (tests/fuzz_*.test.ts): how many cases a
// property runs, a check that counts them and fails with fast-check's own
// report, and the JSON record of the counts under .tmp/fuzz/, which the
// README's reliability section quotes.
//
// Cases per property: SLUICE_FUZZ_RUNS when set (the long run, say
// `SLUICE_FUZZ_RUNS=100000`), otherwise each property's own CI default.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { runtime } from "./_helpers.ts";

function fromEnv(): number | undefined {
  let value: string | undefined;
  try {
    value = process.env.SLUICE_FUZZ_RUNS;
  } catch {
    return undefined; // no --allow-env: the CI defaults
  }
  if (value === undefined || value === "") return undefined;
  const runs = Number(value);
  if (!Number.isSafeInteger(runs) || runs < 1) {
    throw new RangeError(
      `Cannot fuzz: SLUICE_FUZZ_RUNS must be a positive integer, got ${value}`,
    );
  }
  return runs;
}

const override = fromEnv();

/** Cases for a property: SLUICE_FUZZ_RUNS if set, else `ciRuns`. */
export function runsFor(ciRuns: number): number {
  return override ?? ciRuns;
}

/** Per-case time limit for async properties: a hang fails the case. */
export const CASE_TIMEOUT_MS = 5_000;

/** Counts of cases run, per property, for one suite. */
export class FuzzRecord {
  readonly #suite: string;
  readonly #counts: Record<string, number> = {};

  constructor(suite: string) {
    this.#suite = suite;
  }

  /** Runs a synchronous property, records its cases, throws on failure. */
  check<Ts>(
    name: string,
    property: fc.IProperty<Ts>,
    ciRuns: number,
  ): void {
    const details = fc.check(property, { numRuns: runsFor(ciRuns) });
    this.#settle(name, details);
  }

  /** Runs an async property with a per-case time limit. */
  async checkAsync<Ts>(
    name: string,
    property: fc.IAsyncProperty<Ts>,
    ciRuns: number,
  ): Promise<void> {
    const details = await fc.check(property, {
      numRuns: runsFor(ciRuns),
      timeout: CASE_TIMEOUT_MS,
    });
    this.#settle(name, details);
  }

  #settle<Ts>(name: string, details: fc.RunDetails<Ts>): void {
    if (details.failed) {
      // The report names the counterexample; the property's own error says
      // what went wrong with it.
      const cause = details.errorInstance;
      throw new Error(
        `${fc.defaultReportMessage(details) ?? `${name} failed`}\n${
          (cause as Error)?.stack ?? cause
        }`,
        { cause },
      );
    }
    this.#counts[name] = details.numRuns;
  }

  /** Writes `.tmp/fuzz/<suite>.<runtime>.json` and prints the total. */
  async save(): Promise<void> {
    const dir = join(import.meta.dirname ?? ".", "..", ".tmp", "fuzz");
    await mkdir(dir, { recursive: true });
    const total = Object.values(this.#counts).reduce((a, b) => a + b, 0);
    const properties = Object.keys(this.#counts).length;
    await writeFile(
      join(dir, `${this.#suite}.${runtime}.json`),
      JSON.stringify(
        { suite: this.#suite, runtime, properties, total, cases: this.#counts },
        null,
        2,
      ) + "\n",
    );
    console.log(
      `fuzz ${this.#suite} (${runtime}): ${properties} properties, ${total} cases`,
    );
  }
}

/** Any bytes, biased towards the short and the framing-relevant. */
export function anyBytes(maxLength = 96): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength }),
    fc.array(fc.constantFrom(0, 1, 2, 0x7f, 0x80, 0xff, 0x0a, 0x0d), {
      maxLength,
    }).map((a) => Uint8Array.from(a)),
  );
}

/** Cut points for {@linkcode split}. */
export const cuts: fc.Arbitrary<number[]> = fc.array(fc.nat(), {
  maxLength: 12,
});

/** Splits bytes into chunks at the given (wrapped, sorted) cut points. */
export function split(bytes: Uint8Array, points: number[]): Uint8Array[] {
  if (bytes.byteLength === 0) return [bytes];
  const at = [...new Set(points.map((p) => p % bytes.byteLength))]
    .sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of at) {
    chunks.push(bytes.slice(from, p));
    from = p;
  }
  chunks.push(bytes.slice(from));
  return chunks;
}

/** Concatenates chunks. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * Errors a decoder must never throw: the engine's own complaints about bad
 * lengths or missing properties mean the input reached code that did not
 * check it.
 */
export function assertNotForeign(error: unknown): void {
  const message = String((error as Error)?.message ?? error);
  if (
    /Invalid typed array length|Cannot read propert|undefined is not|is not a function|Array buffer allocation failed|Maximum call stack|Invalid array length|out of memory/i
      .test(message)
  ) {
    throw new Error(`Foreign error escaped: ${message}`, { cause: error });
  }
}
