// Steps every protocol's server side shares.

/** An empty byte stream, for requests without a body. */
export function emptyBody(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (c) => c.close() });
}
