// sweepTemporaryFiles deletes only the file sink's stale temporaries.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createFileSink, sweepTemporaryFiles } from "../lib/runtime/fs.ts";
import { makeTempDir, removeDir } from "./_helpers.ts";

const UUID = "0f8fad5b-d9cb-469f-a165-70867728950e";

describe("sweepTemporaryFiles", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("sweep-");
  });
  after(async () => {
    await removeDir(dir);
  });

  it("sweepTemporaryFiles deletes stale temporaries and nothing else", async () => {
    const here = join(dir, "mixed");
    await mkdir(here);
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    const stale = `.report.pdf.${UUID}.partial`;
    const fresh = `.other.${UUID}.partial`;
    const lookalikes = [
      `report.pdf.${UUID}.partial`, // no leading dot: not the sink's shape
      `.report.pdf.partial`, // no UUID
      `.report.${UUID}.partial.bak`,
      "report.pdf",
    ];
    for (const name of [stale, fresh, ...lookalikes]) {
      await writeFile(join(here, name), "x");
    }
    for (const name of [stale, ...lookalikes]) {
      await utimes(join(here, name), old, old);
    }
    // A directory of the temporary shape is not a file: kept.
    await mkdir(join(here, `.dir.${UUID}.partial`));
    const removed = await sweepTemporaryFiles(here);
    assert.deepEqual(removed, [join(here, stale)]);
    assert.deepEqual(
      (await readdir(here)).sort(),
      [fresh, `.dir.${UUID}.partial`, ...lookalikes].sort(),
    );
  });

  it("sweepTemporaryFiles with olderThanMs 0 deletes even a temporary being written (why the default is an hour)", async () => {
    const here = join(dir, "now");
    await mkdir(here);
    const writer = createFileSink(join(here, "target")).getWriter();
    try {
      await writer.write(new Uint8Array([1, 2, 3]));
      const [temporary] = await readdir(here);
      assert.match(temporary, /^\.target\..*\.partial$/);
      // Written "after" the sweep starts, as a write in the same millisecond
      // looks (its mtime has sub-millisecond digits): still swept.
      const later = new Date(Date.now() + 1000);
      await utimes(join(here, temporary), later, later);
      assert.deepEqual(await sweepTemporaryFiles(here, { olderThanMs: 0 }), [
        join(here, temporary),
      ]);
    } finally {
      // Closed either way: a file handle left open fails a later test
      // under Bun when it is collected.
      await writer.abort();
    }
    assert.deepEqual(await readdir(here), []);
  });

  it("sweepTemporaryFiles refuses a negative olderThanMs with a RangeError", async () => {
    await assert.rejects(
      sweepTemporaryFiles(dir, { olderThanMs: -1 }),
      /olderThanMs must be a non-negative number of milliseconds/,
    );
  });
});
