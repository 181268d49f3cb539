// A WebSocket for the fuzz suites, whose peer the test plays.

/**
 * A WebSocket whose peer the test plays: messages and a close, as given.
 * Its listeners are called directly, so that one that throws fails the
 * test (an EventTarget would only report it).
 */
export class FakeWebSocket {
  readonly #listeners = new Map<string, Set<(event: Event) => void>>();
  readyState = 1;
  binaryType = "blob";
  bufferedAmount = 0;
  closedWith: { code: number; reason: string } | undefined;
  /** Calls of close(), answered or not. */
  closes = 0;
  addEventListener(type: string, listener: (event: Event) => void): void {
    let set = this.#listeners.get(type);
    if (set === undefined) this.#listeners.set(type, set = new Set());
    set.add(listener);
  }
  removeEventListener(type: string, listener: (event: Event) => void): void {
    this.#listeners.get(type)?.delete(listener);
  }
  #dispatch(event: Event): void {
    for (const listener of [...this.#listeners.get(event.type) ?? []]) {
      listener(event);
    }
  }
  /** What the socket's owner sent, copied. */
  readonly sent: (Uint8Array | string)[] = [];
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (typeof data === "string") this.sent.push(data);
    else if (ArrayBuffer.isView(data)) {
      this.sent.push(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(),
      );
    } else if (data instanceof Blob) {
      throw new TypeError("FakeWebSocket: Blob sends are not recorded");
    } else this.sent.push(new Uint8Array(data).slice());
  }
  close(code = 1000, reason = ""): void {
    this.closes++;
    if (this.readyState >= 2) return;
    this.readyState = 2;
    this.closedWith = { code, reason };
  }
  /** The peer sends a message. */
  receive(data: unknown): void {
    if (this.readyState === 3) return;
    this.#dispatch(new MessageEvent("message", { data }));
  }
  /** The connection closes with `code`. */
  end(code: number, reason: string): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.#dispatch(Object.assign(new Event("close"), { code, reason }));
  }
}
