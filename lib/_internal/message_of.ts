// What a thrown value says, whatever was thrown: a handler or a callback
// may throw anything, and the text of an error about it must not throw in
// turn (String() of an object without a prototype does, and in a promise
// nobody handles it ended the process).

/**
 * An error's message (or any object's string `message`); otherwise the
 * value as text, or its kind (`[object Object]`) when it cannot be made
 * text.
 */
export function messageOf(value: unknown): string {
  try {
    if (value instanceof Error) return value.message;
    const message = (value as { message?: unknown } | null | undefined)
      ?.message;
    if (typeof message === "string") return message;
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return "a value that cannot be shown";
    }
  }
}

/**
 * A failure's message with its cause's, where the runtime keeps the reason
 * there: Deno's and Node's fetch reject with "fetch failed" alone, the
 * refused connection or the unknown host in `cause`.
 */
export function failureOf(value: unknown): string {
  const message = withoutQueries(messageOf(value));
  let cause: unknown;
  try {
    cause = (value as { cause?: unknown } | null | undefined)?.cause;
  } catch {
    return message;
  }
  if (cause === undefined || cause === null || cause === value) return message;
  const reason = withoutQueries(messageOf(cause)).slice(0, 200);
  return reason === "" || message.includes(reason)
    ? message
    : `${message} (${reason})`;
}

/**
 * `text` with the query and fragment of each URL in it left out: Deno's
 * fetch errors name the request's URL ("error sending request for url
 * (...)"), whose query may hold a token, an upload's URL (a capability) or
 * a Connect GET's message.
 */
export function withoutQueries(text: string): string {
  // The query runs to a space, or to the quote the URL was opened with (a
  // path may hold an apostrophe: URLs leave it as it is); the punctuation
  // that ends it (a ")" or ":" after a URL in parentheses) is the text's.
  return text.replace(
    /(['"`]?)\b((?:https?|wss?):\/\/[^\s?#"`]*)([?#][^\s"`]+)/gi,
    (_match, quote: string, base: string, query: string) => {
      const close = quote === "" ? -1 : query.lastIndexOf(quote);
      const after = close === -1 ? "" : query.slice(close);
      const rest = close === -1 ? query : query.slice(0, close);
      return quote + base + /[)\]}>.,:;!]*$/.exec(rest)![0] + after;
    },
  );
}
