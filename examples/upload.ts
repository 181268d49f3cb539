// Ballerina's HTTP streaming example, end to end:
//
//   GET  /stream/fileupload  streams a PDF as the request body of
//   POST /stream/receiver    which writes it to ReceivedFile.pdf block by
//                            block and answers "File Received!";
//   /stream/fileupload forwards that response to its caller.
//
// Run: deno run --allow-net=127.0.0.1 --allow-read --allow-write --allow-env examples/upload.ts
//      bun run examples/upload.ts
// Flags: --port N (default: a free port), --file PATH (default: the bundled
//        examples/files/BallerinaLang.pdf), --out DIR (default: a new
//        temporary directory in the demo, found through TMPDIR, hence
//        --allow-env; ./received in server mode).
//
// Server mode: a standalone receiver, for curl or any client.
//
//   deno run --allow-net=127.0.0.1 --allow-read --allow-write examples/upload.ts server --port 9090 --out ./uploads
//   curl -T report.pdf http://127.0.0.1:9090/stream/receiver
//
//   curl -F a=@x.bin -F b=@y.txt -F note=hi http://127.0.0.1:9090/stream/receiver
//
// A raw body is stored atomically in DIR under a new random name (nothing
// the client says becomes a path) and answered "File Received!". A
// multipart/form-data body (curl -F, a browser's FormData) has each file
// part stored atomically in DIR under its file name as safeFileName accepts
// it (or a new random name when it refuses it or the request already used
// it), all or none of them, and is answered 201 with JSON listing what was
// stored. Stale temporary files of uploads cut off by a crash are swept at
// start-up and every 15 minutes. The limits are the library's safe
// defaults: 1 GiB at most, 408 for a client that sends nothing for 30 s or
// less than 1 KiB/s.

import { createHash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  mkdir,
  mkdtemp,
  open,
  stat,
  unlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  createUploadHandler,
  formatDigestHeader,
  forwardResponse,
  safeFileName,
} from "../mod.ts";
import {
  createFileSink,
  createHasher,
  sweepTemporaryFiles,
  uploadFile,
} from "../lib/runtime/fs.ts";
import { serve } from "../lib/runtime/serve.ts";

const serverMode = process.argv[2] === "server";
const { values: flags } = parseArgs({
  args: process.argv.slice(serverMode ? 3 : 2),
  options: {
    port: { type: "string", default: "0" },
    file: {
      type: "string",
      default: join(import.meta.dirname ?? ".", "files", "BallerinaLang.pdf"),
    },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  console.log(
    "Usage: upload.ts [--port N] [--file PATH] [--out DIR]\n" +
      "Streams PATH through GET /stream/fileupload to POST /stream/receiver,\n" +
      "which writes DIR/ReceivedFile.pdf, and prints the forwarded answer.\n" +
      "       upload.ts server [--port N] [--out DIR]\n" +
      "Serves POST /stream/receiver, storing each raw upload in DIR under a new\n" +
      "name and each file of a multipart/form-data upload under its file name.",
  );
  process.exit(0);
}

/** Answers as Ballerina's example does, with the stored bytes' SHA-256. */
function fileReceived(result: { sha256?: Uint8Array }): Response {
  return new Response("File Received!", {
    headers: {
      "repr-digest": formatDigestHeader({ "sha-256": result.sha256! }),
    },
  });
}

if (serverMode) {
  await runServer();
  // The server runs until SIGINT or SIGTERM.
} else {
  await runDemo();
}

/**
 * Makes `dir` and checks that a file can be written there, by writing one
 * (node:fs's `access` needs Deno's --allow-sys): otherwise every upload
 * would be a 500, the cause in the server's log alone.
 */
async function writableDir(dir: string): Promise<void> {
  const probe = join(dir, `.write-check-${randomUUID()}`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(probe, "");
    await unlink(probe);
  } catch (error) {
    usageError(`Cannot store uploads in ${dir}: ${codeOf(error)}`);
  }
}

/** An error's code (ENOENT, EACCES), else its message. */
function codeOf(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  return code ?? message ?? String(error);
}

async function runServer(): Promise<void> {
  const outDir = resolve(flags.out ?? "received");
  await writableDir(outDir);
  const sweep = async () => {
    for (const path of await sweepTemporaryFiles(outDir)) {
      console.log(`Swept stale temporary file ${path}`);
    }
  };
  await sweep();
  const sweeper = setInterval(() => {
    sweep().catch((error) => console.error("Sweep failed:", error));
  }, 15 * 60 * 1000);
  const stored = new WeakMap<Request, string>();
  const partNames = new WeakMap<Request, Set<string>>();
  const receiver = createUploadHandler({
    // A fresh random name: unguessable, and never a path from the client.
    sink: (request) => {
      const name = `${randomUUID()}.upload`;
      stored.set(request, name);
      return createFileSink(join(outDir, name));
    },
    hasher: createHasher,
    onComplete: (result, request) => {
      console.log(`Stored ${stored.get(request)} (${result.bytes} bytes)`);
      return fileReceived(result);
    },
    multipart: {
      sink: (part, request) => {
        const used = partNames.get(request) ?? new Set<string>();
        partNames.set(request, used);
        let name: string;
        try {
          name = safeFileName(part.filename ?? "");
        } catch {
          name = `${randomUUID()}.upload`; // refused: a name of our own
        }
        if (used.has(name)) name = `${randomUUID()}.upload`;
        used.add(name);
        console.log(`Receiving ${JSON.stringify(part.filename)} as ${name}`);
        const path = join(outDir, name);
        return {
          writable: createFileSink(path),
          storedName: name,
          // Should a later part fail to commit, the form is not kept in part.
          remove: () => unlink(path),
        };
      },
    },
  });
  const server = await serve(async (request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/stream/receiver") return await receiver(request);
    return new Response("Not Found", { status: 404 });
  }, { port: Number(flags.port) });
  console.log(
    `Server listening on ${new URL("/stream/receiver", server.url).href}`,
  );
  // The first signal lets uploads in progress finish (at most serve's
  // shutdownTimeoutMs, 10 s); a second one exits at once.
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    clearInterval(sweeper);
    server.shutdown().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

/** Says what is wrong with the command line, in one line, and exits 1. */
function usageError(message: string): never {
  console.error(message);
  process.exit(1);
}

async function runDemo(): Promise<void> {
  const source = resolve(flags.file);
  // Checked before anything is made: a readable file, not a directory.
  const info = await stat(source).catch((error) =>
    usageError(
      `Cannot upload ${source}: ${
        codeOf(error) === "ENOENT" ? "no such file" : codeOf(error)
      }`,
    )
  );
  if (!info.isFile()) usageError(`Cannot upload ${source}: not a file`);
  await open(source, "r").then((file) => file.close()).catch((error) =>
    usageError(`Cannot upload ${source}: cannot read it (${codeOf(error)})`)
  );
  const size = info.size;
  const outDir = flags.out
    ? resolve(flags.out)
    : await mkdtemp(join(tmpdir(), "sluice-upload-"));
  await writableDir(outDir);
  const target = join(outDir, "ReceivedFile.pdf");

  // A progress bar on a terminal, for files large enough to watch.
  const showProgress = process.stderr.isTTY && size >= 8 * 1024 * 1024;
  function progressBar(sent: number, total: number | undefined) {
    const fraction = total ? sent / total : 0;
    const width = 30;
    const filled = Math.round(fraction * width);
    process.stderr.write(
      `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ` +
        `${(fraction * 100).toFixed(0).padStart(3)}% ${mib(sent)} / ${
          mib(total ?? 0)
        }`,
    );
    if (total !== undefined && sent >= total) process.stderr.write("\n");
  }

  const receiver = createUploadHandler({
    sink: () => createFileSink(target),
    hasher: createHasher,
    maxBytes: Math.max(size, 1024 * 1024 * 1024),
    onComplete: fileReceived,
  });

  let receiverUrl = "";
  const server = await serve(async (request) => {
    const { pathname } = new URL(request.url);
    if (request.method === "GET" && pathname === "/stream/fileupload") {
      // uploadFile streams the file with its Content-Length by the runtime's
      // fastest means (never loading it whole, which Deno's openAsBlob does).
      const response = await uploadFile(receiverUrl, source, {
        contentType: "application/pdf",
        onProgress: showProgress ? progressBar : undefined,
      });
      return forwardResponse(response);
    }
    if (pathname === "/stream/receiver") return await receiver(request);
    return new Response("Not Found", { status: 404 });
  }, { port: Number(flags.port) });
  receiverUrl = new URL("/stream/receiver", server.url).href;

  try {
    console.log(`Server listening on ${server.url}`);
    console.log(`Sending ${source} (${size} bytes, application/pdf)`);
    const started = performance.now();
    const response = await fetch(new URL("/stream/fileupload", server.url));
    const answer = await response.text();
    const elapsed = performance.now() - started;

    const sent = await sha256File(source);
    const stored = await sha256File(target);
    const reported = response.headers.get("repr-digest") ?? "(none)";
    console.log(`Response: ${response.status} ${answer}`);
    console.log(`Bytes: ${size} sent, ${(await stat(target)).size} received`);
    console.log(`SHA-256 sent:     ${sent}`);
    console.log(`SHA-256 received: ${stored}`);
    console.log(`Repr-Digest:      ${reported}`);
    console.log(`Digests equal:    ${sent === stored ? "yes" : "NO"}`);
    console.log(`Saved to:         ${target}`);
    console.log(`Elapsed:          ${elapsed.toFixed(1)} ms`);
    if (!response.ok || sent !== stored) process.exitCode = 1;
  } finally {
    await server.shutdown();
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
