// A bench server process prints "READY <port>" on stdout once it listens;
// the scripts that start one read that line here (bench/run.ts, which keeps
// a child's whole output, reads its lines here too). A node child's stdout
// is passed as `Readable.toWeb(child.stdout)`.

/** The lines of `stream` as they come (the last one even without "\n"). */
export async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    let at;
    while ((at = text.indexOf("\n")) >= 0) {
      yield text.slice(0, at);
      text = text.slice(at + 1);
    }
  }
  if (text !== "") yield text;
}

/**
 * Reads `stdout` up to its "READY <port>" line and returns the port; the
 * lines before it are skipped. Throws, naming `what`, if the stream ends
 * first (the server died). The rest of the stream is read and dropped, so
 * that a server that prints more never blocks on a full pipe.
 */
export async function readyPort(
  stdout: ReadableStream<Uint8Array>,
  what: string,
): Promise<number> {
  // Read by hand: a `for await` that returns closes the generator.
  const out = lines(stdout);
  for (let r = await out.next(); !r.done; r = await out.next()) {
    const match = /^READY (\d+)$/.exec(r.value.trim());
    if (match === null) continue;
    drain(out);
    return Number(match[1]);
  }
  throw new Error(`Cannot start ${what}: it exited before "READY <port>"`);
}

async function drain(out: AsyncGenerator<string>): Promise<void> {
  try {
    while (!(await out.next()).done);
  } catch { /* the process was killed */ }
}
