// The file store survives kill -9: a resumable-upload server in a child
// process is killed three times in the middle of a PATCH; after each
// restart HEAD reports an offset whose bytes are all on disk and correct
// (the data file is cut back to the last checkpoint), and the upload then
// completes byte-identical, its SHA-256 matching.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { resumableUpload } from "../lib/http/mod.ts";
import { createResumableFileStore } from "../lib/runtime/fs.ts";
import {
  deadline,
  makeTempDir,
  randomBytes,
  removeDir,
  runtime,
  sha256Base64 as sha256,
} from "./_helpers.ts";

const MiB = 1024 * 1024;
const ROOT = join(import.meta.dirname ?? ".", "..");
const T = 60_000;

interface Child {
  url: URL;
  process: ChildProcess;
  exited: Promise<void>;
}

async function startChild(dir: string): Promise<Child> {
  const file = join("tests", "_resumable_server.ts");
  const args = [dir, String(MiB)];
  const argv = runtime === "deno"
    ? [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write=./.tmp",
      "--allow-env",
      file,
      ...args,
    ]
    : ["run", file, ...args];
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
    const match = /listening (\S+)/.exec(stdout);
    if (match) listening.resolve(new URL(match[1]));
  });
  child.stderr!.setEncoding("utf8").on("data", (s: string) => stderr += s);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => resolve())
  );
  exited.then(() =>
    listening.reject(new Error(`server exited early:\n${stdout}\n${stderr}`))
  );
  const url = await deadline(listening.promise, T, "server start");
  return { url, process: child, exited };
}

describe("createResumableFileStore after kill -9", () => {
  let dir: string;
  let child: Child | undefined;

  before(async () => {
    dir = await makeTempDir("resumable-kill-");
  });

  after(async () => {
    if (child && child.process.exitCode === null) {
      child.process.kill("SIGKILL");
      await child.exited;
    }
    await removeDir(dir);
  });

  it("reports a correct offset after each restart and completes byte-identical", async () => {
    const size = 48 * MiB;
    const data = randomBytes(size);
    child = await startChild(dir);
    const created = await fetch(new URL("/uploads", child.url), {
      method: "POST",
      headers: { "upload-complete": "?0", "upload-length": String(size) },
    });
    assert.equal(created.status, 201);
    const path = created.headers.get("location")!;
    const id = path.split("/").pop()!;
    let offset = 0;
    /** Restarts that found unchecked bytes past the record and cut them. */
    let cutBack = 0;
    for (let kill = 0; kill < 3; kill++) {
      // Send the rest of the body slowly enough to be killed in the middle:
      // after handing over 6 MiB more, kill the server.
      const start = offset;
      const killAt = start + 6 * MiB + Math.floor(Math.random() * MiB);
      let sent = start;
      const victim = child;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= killAt) {
            if (victim.process.exitCode === null) {
              victim.process.kill("SIGKILL");
            }
            return victim.exited;
          }
          const end = Math.min(size, sent + 256 * 1024);
          controller.enqueue(data.slice(sent, end));
          sent = end;
        },
      });
      await assert.rejects(
        fetch(new URL(path, child.url), {
          method: "PATCH",
          headers: {
            "content-type": "application/partial-upload",
            "upload-offset": String(start),
            "upload-complete": "?0",
          },
          body,
          duplex: "half",
        } as RequestInit),
      );
      await child.exited;
      const before = (await stat(join(dir, `.${id}.upload`))).size;
      child = await startChild(dir);
      const head = await fetch(new URL(path, child.url), { method: "HEAD" });
      assert.equal(head.status, 204);
      offset = Number(head.headers.get("upload-offset"));
      assert.ok(offset >= start && offset <= killAt, `offset ${offset}`);
      // What is on disk is exactly the reported bytes, all correct.
      const onDisk = new Uint8Array(await readFile(join(dir, `.${id}.upload`)));
      assert.equal(onDisk.byteLength, offset);
      assert.equal(sha256(onDisk), sha256(data.subarray(0, offset)));
      cutBack += before > offset ? 1 : 0;
    }
    console.log(`restarts that cut unchecked bytes off: ${cutBack} of 3`);
    // An append acknowledged (204) just before the kill keeps its bytes:
    // its tail file or its checkpoint vouches for them.
    const acked = await fetch(new URL(path, child.url), {
      method: "PATCH",
      headers: {
        "content-type": "application/partial-upload",
        "upload-offset": String(offset),
        "upload-complete": "?0",
      },
      body: data.slice(offset, offset + 256 * 1024),
    });
    assert.equal(acked.status, 204);
    const ackedOffset = Number(acked.headers.get("upload-offset"));
    assert.equal(ackedOffset, offset + 256 * 1024);
    child.process.kill("SIGKILL");
    await child.exited;
    child = await startChild(dir);
    const afterKill = await fetch(new URL(path, child.url), { method: "HEAD" });
    assert.equal(Number(afterKill.headers.get("upload-offset")), ackedOffset);
    const kept = new Uint8Array(await readFile(join(dir, `.${id}.upload`)));
    assert.equal(sha256(kept), sha256(data.subarray(0, ackedOffset)));
    const result = await resumableUpload(new URL("/uploads", child.url), data, {
      uploadUrl: new URL(path, child.url).href,
    });
    assert.equal((await result.response.json()).sha256, sha256(data));
    const stored = new Uint8Array(await readFile(join(dir, id)));
    assert.equal(sha256(stored), sha256(data));
  });

  it("trusts an acknowledged offset's tail file only within the boot it names", async () => {
    // Deno reads /proc only with --allow-all: under the test task's
    // permissions the store has no boot id, writes no tail file and
    // acknowledges an append after its checkpoint.
    const boot = await readFile("/proc/sys/kernel/random/boot_id", "utf8")
      .then((text) => text.trim(), () => undefined);
    const data = randomBytes(300_000);
    const id = "Tail_test_upload_id_AB";
    const first = createResumableFileStore(dir);
    await first.create({ id, offset: 0, complete: false, createdAt: 1 });
    const writer = (await first.append(id, 0)).getWriter();
    await writer.write(data.slice());
    await writer.close();
    assert.equal((await first.get(id))?.offset, data.byteLength);
    const recordPath = join(dir, `.${id}.json`);
    const tailPath = join(dir, `.${id}.tail`);
    if (boot === undefined) {
      assert.equal(
        JSON.parse(await readFile(recordPath, "utf8")).offset,
        data.byteLength,
      );
      await assert.rejects(stat(tailPath));
      return;
    }
    await first.setLength(id, data.byteLength); // waits for the checkpoint
    assert.equal(
      JSON.parse(await readFile(tailPath, "utf8")).offset,
      data.byteLength,
    );
    /** As if the process died before its checkpoint recorded the bytes. */
    const unrecord = async (tailBoot: string) => {
      const record = JSON.parse(await readFile(recordPath, "utf8"));
      await writeFile(recordPath, JSON.stringify({ ...record, offset: 0 }));
      await writeFile(
        tailPath,
        JSON.stringify({ offset: data.byteLength, boot: tailBoot }),
      );
    };
    // The same boot (a killed process): the bytes are kept.
    await unrecord(boot);
    assert.equal(
      (await createResumableFileStore(dir).get(id))?.offset,
      data.byteLength,
    );
    const kept = new Uint8Array(await readFile(join(dir, `.${id}.upload`)));
    assert.equal(sha256(kept), sha256(data));
    // Another boot (a power cut): only the record counts.
    await unrecord("00000000-0000-0000-0000-000000000000");
    assert.equal((await createResumableFileStore(dir).get(id))?.offset, 0);
    assert.equal((await stat(join(dir, `.${id}.upload`))).size, 0);
  });
});
