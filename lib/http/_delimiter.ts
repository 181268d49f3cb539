// Finding a multipart delimiter (CR LF `--` boundary) in bytes: the
// decoder's search for the end of each part, and the encoder's check that a
// value does not hold the caller's boundary. Boundaries have no CR, so a
// delimiter holds a single CR, its first byte.

const CR = 0x0d;

/**
 * The index of `needle` in `haystack` from `from`, or -1, by scanning for
 * CR with the native `indexOf` and checking the rest there. `needle`
 * starts with CR and has no other CR (a multipart delimiter: CR LF `--`
 * boundary, and boundaries have no CR), so after a mismatch at offset k
 * the next match cannot start before k: linear in the haystack whatever
 * the boundary's length.
 */
function indexOfDelimiterLinear(
  haystack: Uint8Array,
  needle: Uint8Array,
  from: number,
): number {
  const n = needle.length;
  const last = haystack.length - n;
  let i = haystack.indexOf(CR, from);
  while (i !== -1 && i <= last) {
    let k = 1;
    while (k < n && haystack[i + k] === needle[k]) k++;
    if (k === n) return i;
    i = haystack.indexOf(CR, i + k);
  }
  return -1;
}

/**
 * The Horspool shift table of `needle`: how far the window may move when
 * its last byte is `c`.
 */
export function shiftTable(needle: Uint8Array): Uint8Array {
  const m = needle.length;
  const shift = new Uint8Array(256).fill(m);
  for (let i = 0; i < m - 1; i++) shift[needle[i]] = m - 1 - i;
  return shift;
}

/**
 * The index of `needle` in `haystack` from `from`, or -1: Horspool's
 * search, which looks at about one byte in `needle.length` of ordinary
 * data. Horspool alone is O(n·m) on crafted input (a long boundary and a
 * body of near-matches); once the bytes compared exceed twice the bytes
 * passed (plus a few windows), the rest is searched with the linear
 * {@linkcode indexOfDelimiterLinear}, so the total stays linear.
 */
export function indexOfDelimiter(
  haystack: Uint8Array,
  needle: Uint8Array,
  shift: Uint8Array,
  from: number,
): number {
  const m = needle.length;
  const last = m - 1;
  const lastByte = needle[last];
  const end = haystack.length - m;
  let work = 0;
  let i = from;
  while (i <= end) {
    const c = haystack[i + last];
    if (c === lastByte) {
      let k = 0;
      while (k < last && haystack[i + k] === needle[k]) k++;
      if (k === last) return i;
      work += k + 1;
      if (work > 2 * (i - from) + 4 * m) {
        return indexOfDelimiterLinear(haystack, needle, i);
      }
    }
    i += shift[c];
  }
  return -1;
}

/**
 * Where a delimiter may begin in the last `needle.length - 1` bytes of
 * `haystack` (a prefix of it ends the haystack), or `haystack.length`.
 * Only the last CR can start one (the needle has a single CR).
 */
export function partialDelimiterStart(
  haystack: Uint8Array,
  needle: Uint8Array,
  from: number,
): number {
  const end = haystack.length;
  const start = Math.max(from, end - needle.length + 1);
  let i = end - 1;
  while (i >= start && haystack[i] !== CR) i--;
  if (i < start) return end;
  for (let k = 1; i + k < end; k++) {
    if (haystack[i + k] !== needle[k]) return end;
  }
  return i;
}

/**
 * Finds a delimiter in a value fed chunk by chunk (the encoder's check of
 * a caller's boundary): anywhere in it, across chunks too, or as `--`
 * boundary at its start (after the CR LF that ends the part's head), where
 * it would end the part for every reader. Keeps fewer bytes than the
 * delimiter's between chunks.
 */
export class DelimiterSearch {
  readonly #needle: Uint8Array;
  readonly #shift: Uint8Array;
  // The last bytes seen, starting with the CR LF before the value.
  #tail: Uint8Array;

  /** @param needle The delimiter: CR LF `--` boundary. */
  constructor(needle: Uint8Array, shift: Uint8Array = shiftTable(needle)) {
    this.#needle = needle;
    this.#shift = shift;
    this.#tail = needle.subarray(0, 2);
  }

  /** Whether the value so far, `chunk` its latest bytes, holds it. */
  found(chunk: Uint8Array): boolean {
    const needle = this.#needle;
    const keep = needle.length - 1;
    // Across the join: the tail and the start of the chunk.
    const join = new Uint8Array(
      this.#tail.length + Math.min(chunk.length, keep),
    );
    join.set(this.#tail);
    join.set(chunk.subarray(0, keep), this.#tail.length);
    if (
      indexOfDelimiter(join, needle, this.#shift, 0) >= 0 ||
      indexOfDelimiter(chunk, needle, this.#shift, 0) >= 0
    ) return true;
    this.#tail = chunk.length >= keep
      ? chunk.slice(chunk.length - keep)
      : join.slice(Math.max(0, join.length - keep));
    return false;
  }
}
