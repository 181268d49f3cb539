// Header values are byte strings (a character per byte). Text beyond ASCII
// in one, as an event id in Last-Event-ID (which the HTML standard sends
// as UTF-8), goes out as its UTF-8 bytes and is read back from them.

const encoder = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true });
const BEYOND_ASCII = /[\u0080-\uffff]/;

/** `text` as a header value: its UTF-8 bytes, a character each. */
export function toUtf8Header(text: string): string {
  if (!BEYOND_ASCII.test(text)) return text;
  const bytes = encoder.encode(text);
  let value = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    value += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return value;
}

/**
 * The text a header value's bytes hold as UTF-8; the value as it is when
 * they are not UTF-8 (a Latin-1 value of an older client).
 */
export function fromUtf8Header(value: string): string {
  if (!BEYOND_ASCII.test(value)) return value;
  const bytes = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code > 0xff) return value;
    bytes[i] = code;
  }
  try {
    return strict.decode(bytes);
  } catch {
    return value;
  }
}

/**
 * Whether a header can carry `text` as the runtimes send it: no control
 * character but a tab (RFC 9110, 5.5; Deno's fetch refuses to send one,
 * Deno's server panics on one in a response, Bun's server refuses one in a
 * request, though the Fetch standard forbids only NUL, CR and LF).
 */
export function headerCanCarry(text: string): boolean {
  return !CONTROL.test(text);
}

// Control characters on purpose: the ones a header cannot carry.
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Whether a header carries `text` back unchanged: as `headerCanCarry`, and
 * no space or tab at either end (fetch trims them from a value).
 */
export function headerKeeps(text: string): boolean {
  return headerCanCarry(text) && !EDGE_SPACE.test(text);
}

const EDGE_SPACE = /^[ \t]|[ \t]$/;

/**
 * Throws a TypeError naming `what` if a value of `headers` has a control
 * character other than a tab: `Headers` takes one, but Deno's fetch refuses
 * to send it, which a client that retries would take for a network error.
 */
export function checkHeaderValues(what: string, headers: Headers): void {
  for (const [name, value] of headers) {
    if (!headerCanCarry(value)) {
      throw new TypeError(
        `Cannot ${what}: the value of header ${name} has a control character, which the runtime's fetch refuses to send`,
      );
    }
  }
}
