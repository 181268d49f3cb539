// A streaming request body sent again when the server never processed its
// HTTP/2 stream (createHttp2Client).

import type { Duplex } from "node:stream";
import type { ByteSink } from "../streams/_fuse.ts";
import { deferred } from "../_internal/deferred.ts";
import { drained, nodeBytes } from "./_node_streams.ts";

/** Bytes of one call's request body kept for sending again. */
export const REPLAY_CALL_BYTES = 64 * 1024;
/** Bytes kept for sending again by all the calls of one client at once. */
export const REPLAY_CLIENT_BYTES = 16 * 1024 * 1024;

/** The bytes all the calls of one client keep (see REPLAY_CLIENT_BYTES). */
export interface ReplayBudget {
  used: number;
}

/**
 * The sink a streaming request body is written into once, whichever HTTP/2
 * stream carries it: each attempt of the call attaches its stream. Until the
 * server shows it processed the stream (its response head: `release`), the
 * chunks written are kept, up to REPLAY_CALL_BYTES (and the client's
 * REPLAY_CLIENT_BYTES), so that a stream it refused or left above a
 * GOAWAY's last stream can be sent again whole on the next attempt, as
 * grpc-js retries transparently. While the stream is gone and the body is
 * kept, writes wait for the next attempt (or `fail`).
 */
export class RequestReplay implements ByteSink {
  readonly #budget: ReplayBudget;
  #target: Duplex | undefined;
  #cancel: (() => void) | undefined;
  #kept: Uint8Array[] | undefined = [];
  #keptBytes = 0;
  #ended = false;
  #aborted = false;
  #failure: { error: unknown } | undefined;
  #notKept: string | undefined;
  // Settled by the next attach (resolved) or by fail (rejected).
  #attached = deferred<void>();

  constructor(budget: ReplayBudget) {
    this.#budget = budget;
    this.#attached.promise.catch(() => {});
  }

  /** Whether the whole body written so far is kept: the call can go again. */
  get replayable(): boolean {
    return this.#kept !== undefined && this.#failure === undefined;
  }

  /**
   * Writes into `target` from now on, what was kept first and then the end
   * if the body has ended; `cancel` resets it (the body failed).
   */
  attach(target: Duplex, cancel: () => void): void {
    this.#target = target;
    this.#cancel = cancel;
    // The body failed while no stream carried it.
    if (this.#aborted) return cancel();
    for (const chunk of this.#kept ?? []) target.write(nodeBytes(chunk));
    if (this.#ended) target.end();
    const attached = this.#attached;
    this.#attached = deferred();
    this.#attached.promise.catch(() => {});
    attached.resolve();
  }

  /** The server processed the stream: nothing more is kept. */
  release(): void {
    if (this.#kept === undefined) return;
    this.#budget.used -= this.#keptBytes;
    this.#kept = undefined;
    this.#keptBytes = 0;
  }

  /** The call failed for good: the body's writes fail with `error`. */
  fail(error: unknown): void {
    this.release();
    this.#failure ??= { error };
    this.#attached.reject(error);
  }

  /** The body has ended: so does the stream. */
  end(): void {
    this.#ended = true;
    const target = this.#target;
    if (target !== undefined && !target.destroyed) target.end();
  }

  /** The body failed: the current stream is reset, and any later one. */
  abort(): void {
    this.#aborted = true;
    this.#cancel?.();
  }

  /** Why the body is not kept whole, if that is why it is not replayable. */
  get notKept(): string | undefined {
    return this.#notKept;
  }

  write(chunk: Uint8Array): boolean {
    if (this.#failure !== undefined) throw this.#failure.error;
    const kept = this.#kept;
    if (kept !== undefined) {
      const size = chunk.byteLength;
      if (this.#keptBytes + size > REPLAY_CALL_BYTES) {
        this.#notKept =
          `more of its request than a call keeps to send again (${REPLAY_CALL_BYTES} bytes)`;
        this.release();
      } else if (this.#budget.used + size > REPLAY_CLIENT_BYTES) {
        this.#notKept =
          `more of the requests of the client's calls than it keeps to send again (${REPLAY_CLIENT_BYTES} bytes)`;
        this.release();
      } else {
        kept.push(chunk);
        this.#keptBytes += size;
        this.#budget.used += size;
      }
    }
    const target = this.#target;
    if (target === undefined || target.destroyed) {
      // Kept: it goes with the next attempt, which drained() waits for.
      if (this.#kept !== undefined) return false;
      throw new Error("Cannot write stream: it was closed");
    }
    return target.write(nodeBytes(chunk));
  }

  async drained(): Promise<void> {
    while (true) {
      if (this.#failure !== undefined) throw this.#failure.error;
      const target = this.#target;
      if (target === undefined || target.destroyed) {
        if (this.#kept === undefined) {
          throw new Error("Cannot write stream: it was closed");
        }
        await this.#attached.promise;
        continue;
      }
      if (!target.writableNeedDrain) return;
      try {
        return await drained(target);
      } catch {
        // Closed meanwhile: as above, a next attempt or a failure.
      }
    }
  }
}
