// One server process and one client process of a bench script, for the A/B
// scripts (bench/h2_split_ab.ts, bench/h2_lockstep_ab.ts): the server
// prints "READY <port>", the client runs to its end and prints a JSON line
// last.

import { readyPort } from "./_ready.ts";

/**
 * Starts `server`, waits for its "READY <port>" line, runs the client that
 * `client(port, serverPid)` makes and returns its last stdout line as JSON; the server
 * is killed afterwards, whatever happened.
 */
export async function serverThenClient(
  server: Deno.Command,
  client: (port: string, serverPid: number) => Deno.Command,
): Promise<unknown> {
  const child = server.spawn();
  try {
    const port = await readyPort(child.stdout, "the server");
    const out = await client(String(port), child.pid).output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    return JSON.parse(
      new TextDecoder().decode(out.stdout).trim().split("\n").pop()!,
    );
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    child.stderr.cancel().catch(() => {});
  }
}
