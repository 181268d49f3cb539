// `deno task stress`: load against one server on 127.0.0.1, in its own
// process (scripts/_stress_server.ts). Three rounds, each N streams at once:
//
//   upload  N uploads of 1 MiB (distinct bytes each) into files; each
//           Repr-Digest and each stored file checked against the bytes sent
//   echo    N full-duplex echo exchanges: 10 lockstep lines, then 64 KiB
//           both ways, every byte checked
//   bidi    N incrementalSum calls (Connect, HTTP/1.1 fetch) of 1..V, every
//           running sum checked
//   refused N hostile uploads: half with a file name too long in UTF-8 bytes
//           (400, before any file is opened), half dripping one byte every
//           50 ms into a receiver with a 1 s rate window (408); no file and
//           no .partial may be left
//
// and the server's RSS before, at peak (sampled every 20 ms) and after (after
// a full GC), its open file descriptors before and after, requests in flight
// and left-over .partial files. The three rounds run once first as a warm-up
// (checked too): "before" is the RSS after it. Fails (exit 1) on any
// incorrect result, any leak (in-flight requests, descriptors or partial
// files left), or RSS at the end above before + RSS_MARGIN.
//
// Usage: deno task stress [--small] [--streams N] [--values V]
//        bun scripts/stress.ts [--small]
// The full run is N = 1000, V = 1000; --small is N = 50, V = 200 (the
// test task runs it). Results: .tmp/stress/<runtime>-<size>.json.

import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { openDuplex, parseDigestHeader, upload } from "../lib/http/mod.ts";
import {
  createClient,
  createConnectTransport,
  createFetchClient,
} from "../lib/rpc/mod.ts";
import { StreamingCalcService } from "../examples/streaming_calc.ts";

const MiB = 1024 * 1024;
/** RSS after the run may exceed RSS before by at most this much. */
const RSS_MARGIN = 64 * MiB;
/** Descriptors after the run may exceed those before by at most this. */
const FD_MARGIN = 8;

const args = process.argv.slice(2);
const small = args.includes("--small");
const option = (name: string, fallback: number) => {
  const at = args.indexOf(name);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const streams = option("--streams", small ? 50 : 1000);
const values = option("--values", small ? 200 : 1000);
const roundMs = option("--round-seconds", small ? 120 : 600) * 1000;
const runtime = "Bun" in globalThis ? "bun" : "deno";
const root = resolve(import.meta.dirname ?? ".", "..");

// `--h2`: HTTP/2 attacks on serveHttp2 instead of the rounds below; see
// h2Attacks() at the end of this file.
if (args.includes("--h2")) process.exit(await h2Attacks());

function log(line: string): void {
  process.stdout.write(line + "\n");
}

// ---- the server process ----------------------------------------------

const uploadDir = join(root, ".tmp", "stress", `uploads-${process.pid}`);
await rm(uploadDir, { recursive: true, force: true });
await mkdir(uploadDir, { recursive: true });

const serverScript = join(root, "scripts", "_stress_server.ts");
const serverArgs = runtime === "bun" ? [serverScript, uploadDir] : [
  "run",
  "--allow-net=127.0.0.1",
  "--allow-read",
  `--allow-write=${join(root, ".tmp")}`,
  "--allow-env",
  "--v8-flags=--expose-gc",
  serverScript,
  uploadDir,
];
const child = spawn(process.execPath, serverArgs, {
  stdio: ["pipe", "pipe", "inherit"],
});
const firstLine = await new Promise<string>((resolve, reject) => {
  const lines = createInterface({ input: child.stdout! });
  lines.once("line", (line) => resolve(line));
  child.once("exit", (code) => reject(new Error(`server exited: ${code}`)));
});
const { port } = JSON.parse(firstLine) as { port: number };
const base = `http://127.0.0.1:${port}`;

interface Stats {
  rss: number;
  peak: number;
  fds: number;
  inFlight: number;
}
/** The server's open descriptors, counted from outside (Deno's permissions
 * keep /proc from the process itself without --allow-all). */
const openFds = () =>
  new Promise<number>((resolve) =>
    execFile(
      "ls",
      [`/proc/${child.pid}/fd`],
      (error, out) =>
        resolve(error ? -1 : out.split("\n").filter(Boolean).length),
    )
  );
const stats = async (): Promise<Stats> => ({
  ...(await (await fetch(`${base}/stats`)).json()),
  fds: await openFds(),
});

/**
 * A fetch whose connections close when the round ends, so that the
 * server's descriptors can be compared (a pooled keep-alive connection is
 * not a leak, but would look like one).
 */
function roundFetch(): { fetch: typeof fetch; close(): void } {
  const D = (globalThis as unknown as {
    Deno?: { createHttpClient(o: object): { close(): void } };
  }).Deno;
  if (D) {
    const client = D.createHttpClient({});
    return {
      fetch: (input, init) =>
        fetch(input, { ...init, client } as unknown as RequestInit),
      close: () => client.close(),
    };
  }
  return {
    fetch: (input, init) =>
      fetch(input, { ...init, keepalive: false } as RequestInit),
    close: () => {},
  };
}
let current = roundFetch();
const gc = async () =>
  await (await fetch(`${base}/gc`, { method: "POST" })).json();

// ---- the rounds -------------------------------------------------------

function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

/** One MiB for upload `i`: a shared block with `i` stamped into it. */
const block = pattern(MiB, 1);
function uploadBody(i: number): Uint8Array {
  const body = block.slice();
  new DataView(body.buffer).setUint32(0, i);
  new DataView(body.buffer).setUint32(MiB - 4, i);
  return body;
}

async function oneUpload(i: number): Promise<void> {
  const body = uploadBody(i);
  const want = createHash("sha256").update(body).digest("base64");
  const response = await upload(`${base}/upload?name=u${i}.bin`, body, {
    fetch: current.fetch,
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`upload ${i}: ${response.status} ${text}`);
  }
  const digest = parseDigestHeader(response.headers.get("repr-digest") ?? "")
    .get("sha-256");
  const got = digest ? btoa(String.fromCharCode(...digest)) : "";
  if (got !== want) throw new Error(`upload ${i}: digest mismatch`);
  const size = (await stat(join(uploadDir, `u${i}.bin`))).size;
  if (size !== MiB) throw new Error(`upload ${i}: stored ${size} bytes`);
}

const dec = new TextDecoder();
async function oneEcho(i: number): Promise<void> {
  const { stream } = openDuplex(`${base}/echo`, { fetch: current.fetch });
  for (let n = 0; n < 10; n++) {
    await stream.write(`stream ${i} line ${n}\n`);
    const line = await stream.readLine();
    if (line !== `stream ${i} line ${n}`) {
      throw new Error(`echo ${i}: line ${n} came back as ${line}`);
    }
  }
  const bulk = pattern(64 * 1024, i + 7);
  const reading = stream.read(bulk.byteLength + 1);
  await stream.write(bulk);
  await stream.closeWrite();
  const back = await reading;
  if (
    back === null || back.byteLength !== bulk.byteLength ||
    !back.every((b, k) => b === bulk[k])
  ) {
    throw new Error(`echo ${i}: bulk bytes differ (${back?.byteLength})`);
  }
  if (await stream.readPartial() !== null) {
    throw new Error(`echo ${i}: no end of input`);
  }
  void dec;
}

async function oneRefused(i: number): Promise<void> {
  if (i % 2 === 0) {
    // 60 emoji: 120 UTF-16 units, 240 UTF-8 bytes, over safeFileName's 209.
    const name = encodeURIComponent("\u{1F600}".repeat(60));
    const response = await upload(
      `${base}/upload?name=${name}`,
      new Uint8Array(16),
      { fetch: current.fetch },
    );
    const text = await response.text();
    if (response.status !== 400 || !/name too long/.test(text)) {
      throw new Error(`refused ${i}: ${response.status} ${text}`);
    }
    return;
  }
  let sent = 0;
  let answered = false;
  const drip = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Bounded: at most 200 bytes (10 s) if the server never refuses. Once
      // refused, the client ends its body (an aborted Deno fetch with a
      // pending stream body keeps its connection open).
      if (answered || sent++ >= 200) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, 50));
      controller.enqueue(new Uint8Array(1));
    },
  });
  const response = await upload(`${base}/upload-strict?name=r${i}.bin`, drip, {
    fetch: current.fetch,
  });
  answered = true;
  const text = await response.text();
  if (response.status !== 408 || !/minBytesPerSecond/.test(text)) {
    throw new Error(`refused ${i}: ${response.status} ${text}`);
  }
}

async function oneBidi(i: number): Promise<void> {
  const calc = createClient(
    StreamingCalcService,
    createConnectTransport({
      baseUrl: base,
      httpClient: createFetchClient({ fetch: current.fetch }),
    }),
  );
  const call = calc.incrementalSum();
  const reading = (async () => {
    let want = 0n;
    for (let k = 1;; k++) {
      const r = await call.receive();
      if (r.done) {
        if (k !== values + 1) throw new Error(`bidi ${i}: ${k - 1} sums`);
        return;
      }
      want += BigInt(k);
      if (r.value !== want) {
        throw new Error(`bidi ${i}: sum ${k} is ${r.value}, not ${want}`);
      }
    }
  })();
  for (let k = 1; k <= values; k++) await call.send(BigInt(k));
  await call.complete();
  await reading;
}

interface Round {
  kind: string;
  streams: number;
  ok: number;
  failed: number;
  seconds: number;
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
  fdsBefore: number;
  fdsAfter: number;
  inFlightAfter: number;
  firstError?: string;
}

async function round(
  kind: string,
  one: (i: number) => Promise<void>,
): Promise<Round> {
  await gc();
  const before = await stats();
  current = roundFetch();
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${kind}: not done in ${roundMs / 1000} s`)),
      roundMs,
    );
  });
  const results = await Promise.race([
    Promise.allSettled(Array.from({ length: streams }, (_, i) => one(i))),
    timeout,
  ]).finally(() => clearTimeout(timer));
  const seconds = (performance.now() - started) / 1000;
  const failures = results.filter((r) => r.status === "rejected");
  const peak = (await stats()).peak;
  current.close();
  // Let closing connections finish before counting what is left.
  await new Promise((resolve) => setTimeout(resolve, 500));
  await gc();
  const after = await stats();
  return {
    kind,
    streams,
    ok: results.length - failures.length,
    failed: failures.length,
    seconds,
    rssBefore: before.rss,
    rssPeak: Math.max(peak, after.peak),
    rssAfter: after.rss,
    fdsBefore: before.fds,
    fdsAfter: after.fds,
    inFlightAfter: after.inFlight,
    firstError: failures.length > 0
      ? String((failures[0] as PromiseRejectedResult).reason)
      : undefined,
  };
}

const mb = (n: number) => (n / MiB).toFixed(1);
log(
  `stress (${runtime}${
    small ? ", small" : ""
  }): ${streams} concurrent streams per round, ` +
    `server pid ${child.pid} on ${base}`,
);
const coldRss = (await gc(), await stats());
const rounds: Round[] = [];
let error: unknown;
let startRss = coldRss;
try {
  // Warm-up: the same three rounds once, checked but not reported, so that
  // "before" is the server's steady state (allocators keep the pages they
  // grew to; a leak grows on every round, retention does not).
  const warmups = [oneUpload, oneEcho, oneBidi];
  for (const one of warmups) {
    const r = await round("warm-up", one);
    if (r.failed > 0) {
      throw new Error(`warm-up: ${r.failed} failed (${r.firstError})`);
    }
  }
  await rm(uploadDir, { recursive: true, force: true });
  await mkdir(uploadDir, { recursive: true });
  startRss = (await gc(), await stats());
  rounds.push(await round("upload 1 MiB", oneUpload));
  const partial = (await readdir(uploadDir)).filter((n) =>
    n.endsWith(".partial")
  );
  if (partial.length > 0) {
    throw new Error(`${partial.length} .partial files left`);
  }
  await rm(uploadDir, { recursive: true, force: true });
  await mkdir(uploadDir, { recursive: true });
  rounds.push(await round("echo", oneEcho));
  rounds.push(await round(`bidi incrementalSum x${values}`, oneBidi));
  rounds.push(await round("refused uploads", oneRefused));
  const left = await readdir(uploadDir);
  if (left.length > 0) {
    throw new Error(`refused uploads left ${left.length} files: ${left[0]}`);
  }
} catch (e) {
  error = e;
}
const endStats = (await gc(), await stats());

log("");
log(
  "| round | streams | correct | failed | time | server RSS before / peak / after | fds before / after |",
);
log("| --- | ---: | ---: | ---: | ---: | --- | --- |");
for (const r of rounds) {
  log(
    `| ${r.kind} | ${r.streams} | ${r.ok} | ${r.failed} | ${
      r.seconds.toFixed(1)
    } s | ` +
      `${mb(r.rssBefore)} / ${mb(r.rssPeak)} / ${
        mb(r.rssAfter)
      } MiB | ${r.fdsBefore} / ${r.fdsAfter} |`,
  );
}
log(
  `server RSS cold ${mb(coldRss.rss)} MiB, after the warm-up ${
    mb(startRss.rss)
  } MiB, at the end ${mb(endStats.rss)} MiB ` +
    `(margin ${mb(RSS_MARGIN)} MiB); fds ${startRss.fds} -> ${endStats.fds}; ` +
    `in flight at the end ${endStats.inFlight}`,
);

const problems: string[] = [];
if (error) problems.push(String(error));
for (const r of rounds) {
  if (r.failed > 0) {
    problems.push(`${r.kind}: ${r.failed} failed (${r.firstError})`);
  }
  if (r.inFlightAfter !== 0) {
    problems.push(`${r.kind}: ${r.inFlightAfter} requests still in flight`);
  }
  if (r.fdsAfter > r.fdsBefore + FD_MARGIN) {
    problems.push(`${r.kind}: descriptors ${r.fdsBefore} -> ${r.fdsAfter}`);
  }
}
if (endStats.rss > startRss.rss + RSS_MARGIN) {
  problems.push(
    `RSS ${mb(startRss.rss)} -> ${mb(endStats.rss)} MiB, over the ${
      mb(RSS_MARGIN)
    } MiB margin`,
  );
}

await mkdir(join(root, ".tmp", "stress"), { recursive: true });
await writeFile(
  join(root, ".tmp", "stress", `${runtime}-${small ? "small" : "full"}.json`),
  JSON.stringify(
    {
      runtime,
      streams,
      values,
      rssMargin: RSS_MARGIN,
      cold: coldRss,
      start: startRss,
      end: endStats,
      rounds,
      problems,
    },
    null,
    2,
  ) + "\n",
);
child.stdin!.end();
await new Promise((resolve) => child.once("exit", resolve));
await rm(uploadDir, { recursive: true, force: true });
if (problems.length > 0) {
  log(`stress FAILED: ${problems.join("; ")}`);
  process.exit(1);
}
log("stress: every result correct, no leaks");

// ---- HTTP/2 attacks (--h2) -------------------------------------------
//
// `deno task stress --h2` (or `bun scripts/stress.ts --h2`): each attack
// against a fresh serveHttp2 server in its own process
// (tests/_h2_server.ts), with a ping every 100 ms on a new connection while
// it runs. Prints the server's RSS before / peak / after a full GC, the
// handlers it started, the slowest ping and whether the process survived.
// Exit 1 if a ping failed or the server process died. Sizes: --h2-streams N
// (per connection, default 1000), --h2-connections C (default 10).

async function h2Attacks(): Promise<number> {
  const a = await import("../tests/_h2_attacks.ts");
  const f = await import("../tests/_h2_frames.ts");
  const n = option("--h2-streams", 1000);
  const c = option("--h2-connections", 10);
  const raws = async (port: number, frames: (i: number) => Uint8Array[]) => {
    const conns = await Promise.all(
      Array.from({ length: c }, () => f.openRawH2(port)),
    );
    for (const raw of conns) {
      raw.write(...Array.from({ length: n }, (_, i) => frames(i)).flat());
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(conns.map((raw) => raw.closed)),
      new Promise((resolve) => timer = setTimeout(resolve, 20_000)),
    ]);
    clearTimeout(timer);
    for (const raw of conns) raw.destroy();
    return conns.filter((raw) => raw.outcome.closed).length;
  };
  const attacks: [string, (url: string, port: number) => Promise<string>][] = [
    [`rapid reset, node:http2 client, ${c} x ${n}`, async (url) => {
      const r = await a.rapidReset(url, c, n);
      return `${r.closed}/${c} sessions closed by the server`;
    }],
    [
      `rapid reset, raw frames, ${c} x ${n}`,
      async (_, port) =>
        `${await raws(port, (i) => [
          f.getFrame(2 * i + 1, "/hold"),
          f.resetFrame(2 * i + 1),
        ])}/${c} sessions closed by the server`,
    ],
    [`${20 * n} streams at once, 1 connection`, async (_, port) => {
      const raw = await f.openRawH2(port);
      raw.write(
        ...Array.from(
          { length: 20 * n },
          (_, i) => f.getFrame(2 * i + 1, "/hold"),
        ),
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        raw.closed,
        raw.settled(20 * n),
        new Promise((resolve) => timer = setTimeout(resolve, 30_000)),
      ]);
      clearTimeout(timer);
      raw.destroy();
      return JSON.stringify(raw.outcome);
    }],
    [`HPACK bomb, ${3 * n} x 60 KB headers`, async (_, port) => {
      const raw = await f.openRawH2(port);
      for (let i = 0; i < 3 * n && !raw.outcome.closed; i++) {
        raw.write(...f.headerFrames(2 * i + 1, f.bombBlock("/ping", 4000, 15)));
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        raw.closed,
        raw.settled(3 * n),
        new Promise((resolve) => timer = setTimeout(resolve, 30_000)),
      ]);
      clearTimeout(timer);
      raw.destroy();
      return JSON.stringify(raw.outcome);
    }],
  ];
  const mib = (bytes: number) => (bytes / MiB).toFixed(0);
  log(`stress --h2 (${runtime}): serveHttp2 under attack, default limits`);
  log("");
  log(
    "| attack | server RSS before / peak / after (MiB) | handlers started (pings included) | slowest ping | pings failed | outcome |",
  );
  log("| --- | --- | ---: | ---: | ---: | --- |");
  let failed = false;
  for (const [name, attack] of attacks) {
    const server = await a.startChildServer({});
    const base = await server.stats("gc");
    await server.stats("reset");
    let slowest = 0;
    let pingsFailed = 0;
    let stop = false;
    const pinger = (async () => {
      while (!stop) {
        const started = performance.now();
        try {
          await a.ping(server.url, 30_000);
        } catch {
          pingsFailed++;
        }
        slowest = Math.max(slowest, performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    let outcome: string;
    try {
      outcome = await attack(server.url, server.port);
    } catch (error) {
      outcome = `attack failed: ${error}`;
    }
    stop = true;
    await pinger;
    const died = await Promise.race([
      server.exited,
      new Promise((resolve) => setTimeout(() => resolve(undefined), 1000)),
    ]);
    if (died !== undefined) {
      failed = true;
      log(
        `| ${name} | ${mib(base.rss)} / - / - | - | ${
          slowest.toFixed(0)
        } ms | ${pingsFailed} | server process died (${died}); ${outcome} |`,
      );
      continue;
    }
    const peak = (await server.stats()).peak;
    const after = await server.stats("gc");
    if (pingsFailed > 0) failed = true;
    log(
      `| ${name} | ${mib(base.rss)} / ${mib(Math.max(peak, after.peak))} / ${
        mib(after.rss)
      } | ${after.started - base.started} | ${
        slowest.toFixed(0)
      } ms | ${pingsFailed} | ${outcome} |`,
    );
    await server.stop();
  }
  return failed ? 1 : 0;
}
