// One part's body as a pull-driven ReadableStream for MultipartStream: the
// parser hands it pieces and waits while the consumer is behind, so a part
// is never held whole, and small pieces that arrive while the consumer is
// busy are joined into one chunk on its next read.

import { type Deferred, deferred } from "../_internal/deferred.ts";
import { ByteAccumulator } from "../_internal/bytes.ts";

/** Pieces waiting for the consumer are joined up to this many bytes. */
const COALESCE_BYTES = 64 * 1024;

/**
 * A part body's stream. Its async iterator is the standard one except that
 * a stream read to its end is left locked: Deno's `releaseLock()` builds an
 * Error with a stack trace every time (measured: 15 µs, more than the rest
 * of a small part's parse), and a finished body has nothing left to read.
 * Leaving the loop early cancels the body (unless `preventCancel`) and
 * releases the lock, as the standard iterator does.
 */
class PartStream extends ReadableStream<Uint8Array> {
  override values(
    options?: { preventCancel?: boolean },
  ): AsyncIterableIterator<Uint8Array> {
    return iterate(this.getReader(), options?.preventCancel ?? false);
  }
  override [Symbol.asyncIterator](
    options?: { preventCancel?: boolean },
  ): AsyncIterableIterator<Uint8Array> {
    return this.values(options);
  }
}

async function* iterate(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  preventCancel: boolean,
): AsyncGenerator<Uint8Array, undefined, unknown> {
  let finished = false;
  try {
    while (true) {
      const result = await reader.read();
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } catch (error) {
    finished = true; // an errored stream: the error is the loop's
    reader.releaseLock();
    throw error;
  } finally {
    if (!finished) {
      if (!preventCancel) await reader.cancel();
      reader.releaseLock();
    }
  }
}

/** The writer's side of one part body. */
export class PartBody {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  // The pieces waiting: one, or several copied into one buffer (a piece
  // may view a much larger buffer: one-byte pieces kept as views held a
  // 64 KiB buffer each under Deno, 4 KiB under workerd).
  #pending: Uint8Array | ByteAccumulator | undefined;
  #pendingBytes = 0;
  #pullWaiting = false;
  #wake: Deferred<void> | undefined;
  #cancelled = false;
  #finished = false;

  constructor() {
    this.stream = new PartStream({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => {
        if (this.#pending !== undefined) this.#flush();
        else this.#pullWaiting = true;
        this.#wakeUp();
      },
      cancel: () => {
        this.#cancelled = true;
        this.#pending = undefined;
        this.#pendingBytes = 0;
        this.#wakeUp();
      },
    }, { highWaterMark: 0 });
  }

  /** Whether the consumer cancelled the body. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.resolve();
  }

  #flush(): void {
    const pending = this.#pending!;
    const chunk = pending instanceof ByteAccumulator
      ? pending.bytes()
      : pending;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    this.#pullWaiting = false;
    this.#controller.enqueue(chunk);
  }

  #nextPull(): Promise<void> {
    this.#wake ??= deferred<void>();
    return this.#wake.promise;
  }

  /**
   * Hands `bytes` to the consumer, or queues them; resolves once fewer than
   * COALESCE_BYTES wait (back-pressure).
   */
  async push(bytes: Uint8Array): Promise<void> {
    if (this.#cancelled) return;
    if (this.#pullWaiting) {
      this.#pullWaiting = false;
      this.#controller.enqueue(bytes);
      return;
    }
    const pending = this.#pending;
    if (pending === undefined) this.#pending = bytes;
    else if (pending instanceof ByteAccumulator) pending.push(bytes);
    else {
      const joined = new ByteAccumulator(0, COALESCE_BYTES * 2);
      joined.push(pending);
      joined.push(bytes);
      this.#pending = joined;
    }
    this.#pendingBytes += bytes.length;
    while (
      this.#pendingBytes >= COALESCE_BYTES && !this.#cancelled &&
      !this.#finished
    ) {
      await this.#nextPull();
    }
  }

  /** Resolves when the consumer has read everything and the body closed. */
  async finish(): Promise<void> {
    while (this.#pending !== undefined && !this.#cancelled) {
      await this.#nextPull();
    }
    if (this.#cancelled || this.#finished) return;
    this.#finished = true;
    this.#controller.close();
  }

  /** Errors the body (unless it ended or was cancelled). */
  error(reason: unknown): void {
    if (this.#cancelled || this.#finished) return;
    this.#finished = true;
    // Nothing waits to be read any more: a push waiting for room returns.
    this.#pending = undefined;
    this.#pendingBytes = 0;
    this.#controller.error(reason);
    this.#wakeUp();
  }
}
