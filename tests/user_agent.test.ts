// lib/_internal/user_agent.ts: what runs the code, read from
// navigator.userAgent (the core names no runtime global).

import { it } from "node:test";
import assert from "node:assert/strict";
import { isBrowser, isBun } from "../lib/_internal/user_agent.ts";

it("isBun is true under Bun alone, isBrowser under neither runtime", () => {
  const bun = (globalThis as { Bun?: unknown }).Bun !== undefined;
  assert.equal(isBun(), bun);
  assert.equal(isBrowser(), false);
});

it("isBun and isBrowser follow navigator.userAgent", () => {
  const own = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  const agent = (userAgent: string) =>
    Object.defineProperty(globalThis, "navigator", {
      value: { userAgent },
      configurable: true,
      writable: true,
    });
  try {
    agent("Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0");
    assert.deepEqual([isBrowser(), isBun()], [true, false]);
    agent("Bun/1.4.5");
    assert.deepEqual([isBrowser(), isBun()], [false, true]);
    agent("Deno/2.9.6");
    assert.deepEqual([isBrowser(), isBun()], [false, false]);
    // Node 20 has no navigator; an agent that is not a string counts as none.
    Object.defineProperty(globalThis, "navigator", {
      value: {},
      configurable: true,
      writable: true,
    });
    assert.deepEqual([isBrowser(), isBun()], [false, false]);
    delete (globalThis as { navigator?: unknown }).navigator;
    assert.deepEqual([isBrowser(), isBun()], [false, false]);
  } finally {
    if (own) Object.defineProperty(globalThis, "navigator", own);
    else delete (globalThis as { navigator?: unknown }).navigator;
  }
});
