// Every example in examples/ runs to completion under the test runtime:
// `deno run` with the permissions the README gives, or `bun run`. Each is
// started as its own process, as a user would, and its output is checked.
// An example not listed below is still run, with no arguments, and must exit
// with status 0.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { Buffer } from "node:buffer";
import {
  mkdir,
  readdir,
  readFile,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { type AddressInfo, createServer } from "node:net";
import process from "node:process";
import {
  curlAvailable,
  deadline,
  makeTempDir,
  type ProcessOutput,
  removeDir,
  runProcess,
  runtime,
} from "./_helpers.ts";

const hasCurl = await curlAvailable();

const ROOT = join(import.meta.dirname ?? ".", "..");
const T = 60_000;

const GRPC_GUIDE_OUTPUT = [
  "Value: 55",
  ...[1, 3, 6, 10, 15, 21, 28, 36, 45, 55].map((v) => `Value: ${v}`),
  "Complete.",
].join("\n");

interface Example {
  /** Arguments after the file name; `dir` is a fresh temporary directory. */
  args?: (dir: string) => string[];
  /** `deno run` permissions (the README's); Bun takes none. */
  deno: string[];
  check: (stdout: string) => void;
}

const EXAMPLES: Record<string, Example[]> = {
  "upload.ts": [{
    args: (dir) => ["--out", dir],
    deno: ["--allow-net=127.0.0.1", "--allow-read", "--allow-write"],
    check: (out) => {
      assert.match(out, /^Response: 200 File Received!$/m);
      assert.match(out, /^Bytes: 696 sent, 696 received$/m);
      assert.match(out, /^Digests equal: +yes$/m);
    },
  }],
  "streaming_calc.ts": [
    {
      deno: ["--allow-net=127.0.0.1"],
      check: (out) => assert.equal(out.trim(), GRPC_GUIDE_OUTPUT),
    },
    {
      args: () => ["--protocol", "grpc-web"],
      deno: ["--allow-net=127.0.0.1"],
      check: (out) => assert.equal(out.trim(), GRPC_GUIDE_OUTPUT),
    },
    {
      args: () => ["--protocol", "grpc"],
      deno: ["--allow-net=127.0.0.1", "--allow-env"],
      check: (out) => assert.equal(out.trim(), GRPC_GUIDE_OUTPUT),
    },
    // On IPv6: --host was taken by the client alone, unbracketed, and
    // serveHttp2 threw on "::1" after binding.
    {
      args: () => ["--host", "::1"],
      deno: ["--allow-net=[::1]"],
      check: (out) => assert.equal(out.trim(), GRPC_GUIDE_OUTPUT),
    },
    {
      args: () => ["--protocol", "grpc", "--host", "::1"],
      deno: ["--allow-net=[::1]", "--allow-env"],
      check: (out) => assert.equal(out.trim(), GRPC_GUIDE_OUTPUT),
    },
  ],
  // The same service from generated code (examples/gen/, `deno task gen`).
  "streaming_calc_es.ts": [
    {
      deno: ["--allow-net=127.0.0.1"],
      check: (out) => assert.equal(out.trim(), GRPC_GUIDE_OUTPUT),
    },
    {
      args: () => ["--protocol", "grpc-web"],
      deno: ["--allow-net=127.0.0.1"],
      check: (out) => assert.equal(out.trim(), GRPC_GUIDE_OUTPUT),
    },
    {
      args: () => ["--protocol", "grpc"],
      deno: ["--allow-net=127.0.0.1", "--allow-env"],
      check: (out) => assert.equal(out.trim(), GRPC_GUIDE_OUTPUT),
    },
  ],
  "echo.ts": [{
    deno: ["--allow-net=127.0.0.1"],
    check: (out) => {
      for (const transport of ["over HTTP", "over WebSocket"]) {
        assert.ok(out.includes(transport), transport);
      }
      assert.equal(out.match(/client read "Hello, World!"/g)?.length, 2);
      assert.equal(out.match(/end of input: true/g)?.length, 2);
    },
  }],
};

function run(
  file: string,
  args: string[],
  denoFlags: string[],
): Promise<ProcessOutput> {
  const argv = runtime === "deno"
    ? ["run", ...denoFlags, file, ...args]
    : ["run", file, ...args];
  return runProcess(process.execPath, argv, { cwd: ROOT, timeoutMs: T });
}

const files = (await readdir(join(ROOT, "examples")))
  .filter((name) => name.endsWith(".ts"))
  .sort();

describe(`examples under ${runtime} run`, () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("examples-");
  });
  after(async () => {
    await removeDir(dir);
  });

  it("examples/ has examples to run", () => {
    assert.ok(files.length > 0);
  });

  for (const file of files) {
    const variants = EXAMPLES[file] ??
      [{ deno: ["--allow-all"], check: () => {} }];
    for (const example of variants) {
      const args = example.args?.("DIR") ?? [];
      const shown = [file, ...args].join(" ");
      it(`examples/${shown} runs under ${runtime} run`, async () => {
        const { code, stdout, stderr } = await run(
          join("examples", file),
          example.args?.(dir) ?? [],
          example.deno,
        );
        assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
        example.check(stdout);
      });
    }
  }
});

describe(`the StreamingCalcService examples' clients under ${runtime}`, () => {
  // Before, a client whose calls failed printed the errors and exited 0,
  // and an unknown --method did nothing and exited 0.
  for (const file of ["streaming_calc.ts", "streaming_calc_es.ts"]) {
    for (const protocol of ["connect", "grpc"]) {
      it(`examples/${file} client --protocol ${protocol} exits 1 when its calls fail (nothing listening)`, async () => {
        const port = await closedPort();
        const { code, stdout, stderr } = await run(
          join("examples", file),
          ["client", "--port", String(port), "--protocol", protocol],
          ["--allow-net=127.0.0.1", "--allow-env"],
        );
        assert.equal(code, 1, `exit ${code}\n${stdout}\n${stderr}`);
        assert.match(stdout + stderr, /unavailable/i);
      });
    }
    it(`examples/${file} refuses an unknown --method`, async () => {
      const { code, stderr } = await run(
        join("examples", file),
        ["client", "--method", "summ"],
        ["--allow-net=127.0.0.1"],
      );
      assert.equal(code, 1);
      assert.match(
        stderr,
        /Unknown method "summ": use sum, incrementalSum or both/,
      );
      assert.doesNotMatch(stderr, /\bat /, "one line, no stack trace");
    });
  }
});

describe(`examples/upload.ts under ${runtime} with a wrong --file`, () => {
  // Before: an uncaught ENOENT with its stack and a new empty temporary
  // directory each time; a directory died on EISDIR after a 500.
  for (
    const [file, said] of [
      ["./no-such.pdf", /^Cannot upload \/.*\/no-such\.pdf: no such file$/m],
      ["./examples", /^Cannot upload \/.*\/examples: not a file$/m],
    ] as const
  ) {
    it(`--file ${file}: one line saying so, exit 1`, async () => {
      const { code, stdout, stderr } = await run(
        join("examples", "upload.ts"),
        ["--file", file],
        ["--allow-net=127.0.0.1", "--allow-read", "--allow-write=./.tmp"],
      );
      assert.equal(code, 1, `${stdout}\n${stderr}`);
      assert.match(stderr, said);
      assert.doesNotMatch(stderr, /\bat /, "no stack trace");
    });
  }
});

/** A port of 127.0.0.1 that nothing listens on (one just closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** An example started in server mode, as a user would: its own process. */
interface ExampleServer {
  /** The URL it printed. */
  url: URL;
  /** Everything it printed so far. */
  output(): string;
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

async function startExampleServer(
  file: string,
  args: string[],
  denoFlags: string[],
): Promise<ExampleServer> {
  const argv = runtime === "deno"
    ? ["run", ...denoFlags, join("examples", file), ...args]
    : ["run", join("examples", file), ...args];
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let stdout = "";
  let stderr = "";
  const listening = Promise.withResolvers<URL>();
  child.stdout!.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
    const match = /Server listening on (\S+)/.exec(stdout);
    if (match) listening.resolve(new URL(match[1]));
  });
  child.stderr!.setEncoding("utf8").on("data", (s: string) => stderr += s);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => resolve())
  );
  exited.then(() =>
    listening.reject(new Error(`${file} exited early:\n${stdout}\n${stderr}`))
  );
  const url = await deadline(listening.promise, T, `${file} start`);
  return {
    url,
    output: () => stdout,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await deadline(exited, T, `${file} exit`).catch(() => {
        child.kill("SIGKILL");
      });
    },
  };
}

/** Runs curl with `args`, resolving with its standard output. */
function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("curl", ["-sS", "--max-time", "30", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => out += s);
    child.stderr.setEncoding("utf8").on("data", (s: string) => err += s);
    child.on("error", reject);
    child.on(
      "close",
      (code) =>
        code === 0 ? resolve(out) : reject(new Error(`curl ${code}: ${err}`)),
    );
  });
}

const UPLOAD_FLAGS = ["--allow-net=127.0.0.1", "--allow-read", "--allow-write"];

describe(`example servers under ${runtime}`, () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("example-servers-");
  });
  after(async () => {
    await removeDir(dir);
  });

  it("examples/upload.ts server stores curl -T, curl --data-binary and fetch uploads under new names", async () => {
    const out = join(dir, "uploads");
    const server = await startExampleServer(
      "upload.ts",
      ["server", "--port", "0", "--out", out],
      UPLOAD_FLAGS,
    );
    try {
      assert.equal(server.url.pathname, "/stream/receiver");
      const pdf = join(ROOT, "examples", "files", "BallerinaLang.pdf");
      const fromFetch = new TextEncoder().encode("from fetch");
      const expected = [await readFile(pdf), Buffer.from(fromFetch)];
      if (hasCurl) {
        assert.equal(
          await curl(["-T", pdf, server.url.href]),
          "File Received!",
        );
        assert.equal(
          await curl(["--data-binary", `@${pdf}`, server.url.href]),
          "File Received!",
        );
      }
      const response = await fetch(server.url, {
        method: "POST",
        body: fromFetch,
      });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "File Received!");
      const names = (await readdir(out)).sort();
      assert.equal(names.length, hasCurl ? 3 : 1);
      for (const name of names) {
        assert.match(name, /^[0-9a-f-]{36}\.upload$/);
        const bytes = await readFile(join(out, name));
        assert.ok(
          expected.some((e) => Buffer.compare(e, bytes) === 0),
          `${name} holds one of the uploads`,
        );
      }
      const missing = await fetch(new URL("/elsewhere", server.url), {
        method: "POST",
        body: "x",
      });
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    } finally {
      await server.stop();
    }
  });

  it("examples/upload.ts server stores each file of curl -F under its name, byte-identical", async () => {
    if (!hasCurl) return; // curl is the client under test
    const out = join(dir, "form-uploads");
    const sources = join(dir, "form-sources");
    await mkdir(sources, { recursive: true });
    const x = new Uint8Array(1024 * 1024 + 7).map((_, i) => (i * 31) & 255);
    const y = new TextEncoder().encode("y file\r\n--not a boundary\r\n");
    await writeFile(join(sources, "x.bin"), x);
    await writeFile(join(sources, "y file.txt"), y);
    const server = await startExampleServer(
      "upload.ts",
      ["server", "--port", "0", "--out", out],
      UPLOAD_FLAGS,
    );
    try {
      const answer = JSON.parse(
        await curl([
          "--fail-with-body",
          "-F",
          `a=@${join(sources, "x.bin")}`,
          "-F",
          `b=@${join(sources, "y file.txt")}`,
          "-F",
          `c=@${join(sources, "x.bin")};filename=../../evil`,
          "-F",
          "note=hello",
          server.url.href,
        ]),
      );
      assert.deepEqual(answer.fields, [{ name: "note", value: "hello" }]);
      assert.deepEqual(
        answer.files.map((f: { name: string; bytes: number }) => [
          f.name,
          f.bytes,
        ]),
        [["a", x.length], ["b", y.length], ["c", x.length]],
      );
      assert.equal(answer.files[0].storedName, "x.bin");
      assert.equal(answer.files[1].storedName, "y file.txt");
      // A name safeFileName refuses gets one of the server's own.
      assert.match(answer.files[2].storedName, /^[0-9a-f-]{36}\.upload$/);
      assert.deepEqual(
        (await readdir(out)).sort(),
        ["x.bin", "y file.txt", answer.files[2].storedName].sort(),
      );
      assert.deepEqual(await readFile(join(out, "x.bin")), Buffer.from(x));
      assert.deepEqual(
        await readFile(join(out, "y file.txt")),
        Buffer.from(y),
      );
      assert.deepEqual(
        await readFile(join(out, answer.files[2].storedName)),
        Buffer.from(x),
      );
      // A raw body still goes in under a new name.
      assert.equal(
        await curl(["--data-binary", "raw", server.url.href]),
        "File Received!",
      );
      assert.equal((await readdir(out)).length, 4);
    } finally {
      await server.stop();
    }
  });

  it("examples/upload.ts server leaves a .partial after kill -9 mid-upload, and sweeps it when restarted", async () => {
    const out = join(dir, "killed");
    const args = ["server", "--port", "0", "--out", out];
    const server = await startExampleServer("upload.ts", args, UPLOAD_FLAGS);
    const abort = new AbortController();
    // Send 256 KiB, then hold the request open.
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent) return new Promise(() => {});
        sent = true;
        controller.enqueue(new Uint8Array(256 * 1024));
      },
    });
    const pending = fetch(server.url, {
      method: "POST",
      body,
      signal: abort.signal,
      duplex: "half",
    } as RequestInit).catch(() => undefined);
    let partial: string | undefined;
    try {
      // The receiver's temporary file appears once its first bytes are
      // written; another process's file system state can only be polled
      // (bounded: 200 looks, 50 ms apart).
      for (let i = 0; i < 200 && !partial; i++) {
        const names = await readdir(out).catch(() => []);
        const name = names.find((n) => n.endsWith(".partial"));
        if (name && (await stat(join(out, name))).size > 0) partial = name;
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(partial, "a temporary file while the upload runs");
    } finally {
      await server.stop("SIGKILL");
      abort.abort();
      await pending;
    }
    // kill -9 runs no cleanup: the temporary file stays.
    assert.deepEqual(await readdir(out), [partial]);
    // Make it stale (the default age is one hour), and add what must stay:
    // a fresh temporary (an upload in progress) and an ordinary file.
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(out, partial!), old, old);
    const fresh = ".x.0f8fad5b-d9cb-469f-a165-70867728950e.partial";
    await writeFile(join(out, fresh), "in progress");
    await writeFile(join(out, "kept.upload"), "a user's file");
    const restarted = await startExampleServer("upload.ts", args, UPLOAD_FLAGS);
    try {
      assert.match(restarted.output(), /Swept stale temporary file/);
      assert.deepEqual((await readdir(out)).sort(), [fresh, "kept.upload"]);
    } finally {
      await restarted.stop();
    }
  });

  it("examples/echo.ts server echoes POST /echo (curl, fetch) and WebSocket messages on GET /ws", async () => {
    const server = await startExampleServer(
      "echo.ts",
      ["server", "--port", "0"],
      ["--allow-net=127.0.0.1"],
    );
    try {
      const echoUrl = new URL("/echo", server.url);
      const pdf = join(ROOT, "examples", "files", "BallerinaLang.pdf");
      if (hasCurl) {
        assert.equal(
          await curl(["--data-binary", "Hello, World!", echoUrl.href]),
          "Hello, World!",
        );
        const echoed = await curl([
          "--data-binary",
          `@${pdf}`,
          "-o",
          join(dir, "echoed.pdf"),
          echoUrl.href,
        ]);
        assert.equal(echoed, "");
        assert.equal(
          Buffer.compare(
            await readFile(join(dir, "echoed.pdf")),
            await readFile(pdf),
          ),
          0,
        );
      }
      const response = await fetch(echoUrl, { method: "POST", body: "ping" });
      assert.equal(await response.text(), "ping");
      const wsUrl = new URL("/ws", server.url);
      wsUrl.protocol = "ws:";
      const ws = new WebSocket(wsUrl);
      ws.binaryType = "arraybuffer";
      const reply = Promise.withResolvers<string>();
      ws.onmessage = (event) =>
        reply.resolve(new TextDecoder().decode(event.data as ArrayBuffer));
      ws.onerror = () => reply.reject(new Error("WebSocket failed"));
      ws.onopen = () => ws.send(new TextEncoder().encode("over ws"));
      assert.equal(await deadline(reply.promise, T, "ws echo"), "over ws");
      const closed = new Promise((resolve) => ws.onclose = resolve);
      ws.close();
      await deadline(closed, T, "ws close");
    } finally {
      await server.stop();
    }
  });
});
