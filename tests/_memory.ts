// Memory figures of the current process, for the child processes that the
// memory tests start (tests/_memory_peers.ts): a process that runs one side
// of a transfer alone reports its own memory, so that nothing else the test
// runner holds (other tests' garbage, the runner's own buffers, the other
// side of the transfer) shows up in the figure.
//
// On Linux the figures come from /proc/self/status: VmRSS (resident now) and
// VmHWM (the peak since the process started or since `resetPeak()`, which
// writes 5 to /proc/self/clear_refs). The kernel tracks the peak, so a spike
// between two samples is never missed. Deno reads /proc only with
// --allow-all, which is why the tests start these children with it. Where
// /proc is missing, RSS comes from process.memoryUsage() and the peak from
// sampling every 5 ms.

import process from "node:process";
import { readFileSync, writeFileSync } from "node:fs";
import v8 from "node:v8";
import vm from "node:vm";

/**
 * Resident memory now and its peak, the JS heap in use and the memory held
 * outside the heap by JS objects (ArrayBuffers' bytes), in bytes.
 */
export interface MemoryStatus {
  rss: number;
  peak: number;
  heap: number;
  external: number;
}

function fromProc(): { rss: number; peak: number } | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/self/status", "utf8");
  } catch {
    return undefined;
  }
  const kib = (field: string) => {
    const match = text.match(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m"));
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const rss = kib("VmRSS");
  const peak = kib("VmHWM");
  return rss === undefined || peak === undefined ? undefined : { rss, peak };
}

const hasProc = fromProc() !== undefined;
/** Whether /proc/self/clear_refs can reset VmHWM (else the peak is sampled). */
let procPeak = hasProc;
let sampledPeak = 0;
let sampler: ReturnType<typeof setInterval> | undefined;

/** Where the figures come from, for the test's log line. */
export function memorySource(): string {
  return procPeak ? "/proc/self/status VmRSS/VmHWM" : "RSS sampled every 5 ms";
}

/** The process's memory now, and its peak since the last `resetPeak()`. */
export function memoryStatus(): MemoryStatus {
  const { heapUsed: heap, external } = process.memoryUsage();
  const proc = fromProc();
  if (proc && procPeak) return { ...proc, heap, external };
  const rss = proc?.rss ?? process.memoryUsage().rss;
  sampledPeak = Math.max(sampledPeak, rss);
  return { rss, peak: sampledPeak, heap, external };
}

/** Starts a new peak: from now on `peak` is the highest RSS since this call. */
export function resetPeak(): void {
  if (hasProc) {
    try {
      writeFileSync("/proc/self/clear_refs", "5");
      return;
    } catch {
      // Not allowed here: sample the peak instead.
      procPeak = false;
    }
  }
  sampledPeak = process.memoryUsage().rss;
  sampler ??= setInterval(() => {
    sampledPeak = Math.max(sampledPeak, process.memoryUsage().rss);
  }, 5);
  (sampler as { unref?: () => void }).unref?.();
}

/** Runs a full garbage collection, so that figures can be compared. */
export function collectGarbage(): void {
  if ("Bun" in globalThis) {
    (globalThis as unknown as { Bun: { gc(force: boolean): void } }).Bun.gc(
      true,
    );
    return;
  }
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

/**
 * Answers the test runner over standard input and output, one JSON object
 * a line each way: prints `ready` first, then for each command line the JSON
 * its handler returns. `{"cmd":"measure"}` is built in: a full garbage
 * collection, the figures, then a new peak. `onEnd` runs once standard input
 * closes (the runner is done), and then the process exits.
 */
export function answerCommands(
  ready: Record<string, unknown>,
  handlers: Record<string, (command: Record<string, unknown>) => unknown>,
  onEnd: () => Promise<void> = () => Promise.resolve(),
): void {
  const all: typeof handlers = {
    measure: () => {
      collectGarbage();
      const status = memoryStatus();
      resetPeak();
      return { ...status, source: memorySource() };
    },
    ...handlers,
  };
  let queue = Promise.resolve();
  let buffered = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (text: string) => {
    buffered += text;
    let end;
    while ((end = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      queue = queue.then(async () => {
        let reply: unknown;
        try {
          const command = JSON.parse(line);
          const handler = all[command.cmd];
          if (!handler) throw new Error(`Unknown command ${command.cmd}`);
          reply = await handler(command);
        } catch (error) {
          reply = { error: String((error as Error)?.stack ?? error) };
        }
        console.log(JSON.stringify(reply ?? {}));
      });
    }
  });
  process.stdin.on("end", () => {
    queue.then(onEnd).finally(() => process.exit(0));
  });
  resetPeak();
  console.log(JSON.stringify(ready));
}

/**
 * One-byte views, each of a buffer of its own (as a runtime's body chunks
 * are: 64 KiB each under Deno, 4 KiB under workerd), watched by WeakRefs:
 * `view()` makes the next, `alive()` collects garbage and counts the
 * buffers something still keeps.
 */
export class WatchedViews {
  readonly #refs: WeakRef<ArrayBuffer>[] = [];
  readonly #bufferBytes: number;

  constructor(bufferBytes: number) {
    this.#bufferBytes = bufferBytes;
  }

  /** How many views were made. */
  get count(): number {
    return this.#refs.length;
  }

  /** A view of one byte, "a", at the start of a buffer of its own. */
  view(): Uint8Array {
    const buffer = new ArrayBuffer(this.#bufferBytes);
    new Uint8Array(buffer)[0] = 0x61;
    this.#refs.push(new WeakRef(buffer));
    return new Uint8Array(buffer, 0, 1);
  }

  /** The buffers still reachable, after three collections. */
  async alive(): Promise<number> {
    // WeakRefs are cleared only after the job that made them.
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      collectGarbage();
    }
    return this.#refs.filter((ref) => ref.deref() !== undefined).length;
  }
}
