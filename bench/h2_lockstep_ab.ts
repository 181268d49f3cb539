// Interleaved A/B of bench/run.ts's gRPC lockstep rows ("ours, gRPC (h2c,
// node:http2)" and the bare node:http2 floor), with bench/_rpc.ts as is:
// another checkout (base) against this one (new), under Deno and Bun.
//
//   deno run -A bench/h2_lockstep_ab.ts <bun> <baseDir> <newDir> <reps> <n> \
//     [runtimes=deno,bun] [which=base,new,floor] [warmup=10000]
//
// Prints, per runtime, the medians of the runs' p50 and p99 (µs) and their
// ratios (new/base, new/floor). Any other name in `which` is one of
// bench/_rpc.ts's implementations, run from newDir (as floor-h2f,
// ours-connect-h2f: lockstep over Deno's fetch on h2c); with such names,
// each one's p50 is also set against the first name's, the median of the
// repetitions' own ratios. Run it under `taskset -c 1` as the bench pins
// lockstep's pairs.
import { serverThenClient } from "./_server_client.ts";

const [bun, baseDir, newDir, repsArg, nArg, rtArg, implArg, warmupArg] =
  Deno.args;
const reps = Number(repsArg ?? 3);
const n = Number(nArg ?? 4000);
const runtimes = (rtArg ?? "deno,bun").split(",");
const impls = (implArg ?? "base,new,floor").split(",");
const deno = Deno.execPath();

async function one(runtime: string, dir: string, impl: string) {
  const cmd = (argv: string[]) =>
    runtime === "deno"
      ? new Deno.Command(deno, {
        args: [
          "run",
          "--quiet",
          "--allow-net=127.0.0.1",
          "--allow-read",
          "--allow-env",
          "--allow-sys",
          "bench/_rpc.ts",
          ...argv,
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
      })
      : new Deno.Command(bun, {
        args: ["bench/_rpc.ts", ...argv],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
      });
  const result = await serverThenClient(
    cmd(["server", impl]),
    (port) =>
      cmd([
        "client",
        impl,
        port,
        "lockstep",
        String(n),
        String(n),
        ...(warmupArg ? [warmupArg] : []),
      ]),
  ) as { lockstep: { p50: number; p99: number } };
  return result.lockstep;
}

const results: Record<string, { p50: number[]; p99: number[] }> = {};
for (let rep = 0; rep < reps; rep++) {
  for (const runtime of runtimes) {
    for (const which of impls) {
      const dir = which === "base" ? baseDir : newDir;
      const impl = which === "floor"
        ? "floor-h2"
        : which === "base" || which === "new"
        ? "ours-grpc"
        : which;
      const key = `${runtime}:${which}`;
      const r = await one(runtime, dir, impl);
      (results[key] ??= { p50: [], p99: [] }).p50.push(r.p50);
      results[key].p99.push(r.p99);
      console.error(key, r.p50.toFixed(1), r.p99.toFixed(1));
    }
  }
}
const med = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
};
const named = impls.filter((k) => !["base", "new", "floor"].includes(k));
for (const runtime of runtimes) {
  const row = (k: string) => results[`${runtime}:${k}`];
  if (named.length > 0) {
    const first = row(impls[0]);
    for (const k of impls) {
      const r = row(k);
      const ratios = r.p50.map((x, i) => x / first.p50[i]);
      console.log(
        `${runtime}:${k.padEnd(20)} p50 ${med(r.p50).toFixed(1)} [${
          r.p50.map((x) => x.toFixed(0)).join(",")
        }] p99 ${med(r.p99).toFixed(0)} | / ${impls[0]} ${
          med(ratios).toFixed(2)
        } [${ratios.map((x) => x.toFixed(2)).join(",")}]`,
      );
    }
    continue;
  }
  const f = row("floor"), b = row("base"), nw = row("new");
  const line = [`${runtime}:`];
  for (const [k, r] of Object.entries({ base: b, new: nw, floor: f })) {
    if (!r) continue;
    line.push(
      `${k} p50 ${med(r.p50).toFixed(1)} [${
        r.p50.map((x) => x.toFixed(0)).join(",")
      }] p99 ${med(r.p99).toFixed(0)}`,
    );
  }
  if (f && b) line.push(`base/floor ${(med(b.p50) / med(f.p50)).toFixed(2)}`);
  if (f && nw) {
    line.push(
      `new/floor ${(med(nw.p50) / med(f.p50)).toFixed(2)} p99 ${
        (med(nw.p99) / med(f.p99)).toFixed(2)
      }`,
    );
  }
  if (b && nw) {
    line.push(
      `new/base p50 ${(med(nw.p50) / med(b.p50)).toFixed(2)} p99 ${
        (med(nw.p99) / med(b.p99)).toFixed(2)
      }`,
    );
  }
  console.log(line.join(" | "));
}
