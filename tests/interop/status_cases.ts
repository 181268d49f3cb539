// Status-code equivalence (tests/interop.test.ts): failure cases run by the
// same client (grpc-js's, connect-node's over each protocol) against
// sluice's server and against the client's own library's server (grpc-js's
// server for grpc-js, connect-node's for connect-node). Each case records
// the status the client reports; the test asserts that both servers make
// the client report the same code, and the same message where the server
// chooses it (an error the handler throws).

import { CallFailed, type InteropClient } from "./cases.ts";
import { ERROR_METADATA, THROW_PLAIN_ERROR } from "./common.ts";

/**
 * What a client reported: its status code, the message if compared, and
 * the error's ERROR_METADATA if compared.
 */
export interface Observed {
  code: number;
  message?: string;
  metadata?: string | null;
}

/**
 * A case: observe one failure. `message`: whether its text is compared;
 * `metadata`: whether the error's metadata is.
 */
interface StatusCase {
  message: boolean;
  metadata?: boolean;
  run(client: InteropClient): Promise<void>;
}

const OK = 0;

/** Every status code a handler can throw (0, OK, is not an error). */
const CODES = Array.from({ length: 16 }, (_, i) => i + 1);

function thrown(code: number, message: string) {
  return { responseStatus: { code, message } };
}

async function drain(call: { receive(): Promise<unknown> }): Promise<void> {
  while ((await call.receive()) !== undefined);
}

/** The cases by name. */
export const STATUS_CASES: Record<string, StatusCase> = {
  ...Object.fromEntries(CODES.flatMap((code) => [
    [`unary: handler throws code ${code}`, {
      message: true,
      run: (c: InteropClient) =>
        c.unary("unaryCall", thrown(code, `thrown with code ${code}`))
          .then(() => undefined),
    }],
    [`server stream: handler throws code ${code}`, {
      message: true,
      run: (c: InteropClient) =>
        drain(c.serverStreaming(thrown(code, `thrown with code ${code}`))),
    }],
  ])),
  "unary: handler throws code 8 with metadata": {
    message: true,
    metadata: true,
    run: (c) =>
      c.unary("unaryCall", thrown(8, "thrown with metadata"), {
        headers: { [ERROR_METADATA]: "m-1" },
      }).then(() => undefined),
  },
  "server stream: handler throws code 8 with metadata": {
    message: true,
    metadata: true,
    run: (c) =>
      drain(c.serverStreaming(thrown(8, "thrown with metadata"), {
        headers: { [ERROR_METADATA]: "m-1" },
      })),
  },
  "unary: handler throws a plain Error": {
    message: true,
    run: (c) =>
      c.unary("unaryCall", thrown(THROW_PLAIN_ERROR, "a plain Error"))
        .then(() => undefined),
  },
  "server stream: handler throws a plain Error": {
    message: true,
    run: (c) =>
      drain(c.serverStreaming(thrown(THROW_PLAIN_ERROR, "a plain Error"))),
  },
  "deadline exceeded while the server sleeps": {
    // Client or server may notice first; each words it its own way.
    message: false,
    run: (c) =>
      drain(c.serverStreaming({
        responseParameters: [{ size: 1, intervalUs: 10_000_000 }],
      }, { timeoutMs: 300 })),
  },
  "client cancels mid-stream": {
    message: false,
    async run(c) {
      const call = c.serverStreaming({
        responseParameters: [
          { size: 1 },
          { size: 1, intervalUs: 10_000_000 },
        ],
      });
      await call.receive();
      call.cancel();
      await drain(call);
    },
  },
  "unimplemented method": {
    message: false,
    run: (c) => c.unary("unimplementedCall", {}).then(() => undefined),
  },
  "unimplemented service": {
    message: false,
    run: (c) =>
      c.unary("unimplementedCall", {}, { service: "UnimplementedService" })
        .then(() => undefined),
  },
};

/** Runs every case against one client, at once, each bounded in time. */
export async function observeStatuses(
  client: InteropClient,
  timeoutMs = 15_000,
): Promise<Record<string, Observed>> {
  const entries = await Promise.all(
    Object.entries(STATUS_CASES).map(async ([name, c]) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let observed: Observed;
      try {
        await Promise.race([
          c.run(client),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`took more than ${timeoutMs} ms`)),
              timeoutMs,
            );
          }),
        ]);
        observed = { code: OK };
      } catch (error) {
        observed = error instanceof CallFailed
          ? {
            code: error.code,
            message: error.rawMessage,
            ...(c.metadata ? { metadata: error.errorMetadata } : {}),
          }
          : { code: -1, message: String(error).split("\n")[0] };
      } finally {
        clearTimeout(timer);
      }
      if (!c.message && observed.code !== -1) delete observed.message;
      return [name, observed] as const;
    }),
  );
  return Object.fromEntries(entries);
}

/** A row of observations (see StatusRow in matrix.ts). */
interface Observations {
  server: string;
  client: string;
  protocol: string;
  observed: Record<string, Observed>;
}

/**
 * Where sluice's server knowingly differs from a client's own library's:
 * the case, the client, what each server makes it report, and why.
 */
export const DIVERGENCES: {
  client: string;
  case: string;
  own: Observed;
  sluice: Observed;
  reason: string;
}[] = ["unary", "server stream"].map((kind) => ({
  client: "connect-node",
  case: `${kind}: handler throws a plain Error`,
  own: { code: 13, message: "internal error" },
  sluice: { code: 2, message: "a plain Error" },
  reason: "connect-node's server answers an error that is not a " +
    "ConnectError with INTERNAL and hides its message; sluice answers " +
    "UNKNOWN with the message, as grpc-js's server does (so grpc-js's " +
    "client sees the same from both)",
}));

/**
 * The differences between what each client reported from sluice's server
 * and from its own library's, other than DIVERGENCES; and cases whose
 * harness failed (code -1) or whose own server did not give the status the
 * handler threw (so that the comparison means something).
 */
export function statusDifferences(rows: Observations[]): string[] {
  const out: string[] = [];
  const key = (r: Observations) => `${r.client}, ${r.protocol}`;
  const own = new Map(
    rows.filter((r) => r.server === "own").map((r) => [key(r), r]),
  );
  const names = Object.keys(STATUS_CASES);
  for (const row of rows) {
    for (const name of names) {
      const o = row.observed[name];
      if (!o || o.code === -1) {
        out.push(
          `${row.server}, ${key(row)}: ${name}: ${o?.message ?? "did not run"}`,
        );
      }
    }
    if (row.server === "own") {
      for (const code of CODES) {
        const o = row.observed[`unary: handler throws code ${code}`];
        if (o?.code !== code) {
          out.push(`own, ${key(row)}: code ${code} came back as ${o?.code}`);
        }
      }
      for (const [name, c] of Object.entries(STATUS_CASES)) {
        const o = row.observed[name];
        if (c.metadata && o?.metadata !== "m-1") {
          out.push(`own, ${key(row)}: ${name}: metadata ${o?.metadata}`);
        }
      }
      continue;
    }
    const base = own.get(key(row));
    if (!base) {
      out.push(`${key(row)}: no run against its own server`);
      continue;
    }
    for (const name of names) {
      const known = DIVERGENCES.find((d) =>
        d.client === row.client && d.case === name
      );
      const [want, got] = [
        JSON.stringify(known ? known.sluice : base.observed[name]),
        JSON.stringify(row.observed[name]),
      ];
      if (
        known &&
        JSON.stringify(base.observed[name]) !== JSON.stringify(known.own)
      ) {
        out.push(
          `own, ${key(row)}: ${name}: ${
            JSON.stringify(base.observed[name])
          }, not the known ${JSON.stringify(known.own)}`,
        );
      }
      if (want !== got) {
        out.push(
          `${row.server}, ${key(row)}: ${name}: ${got}, own server: ${want}`,
        );
      }
    }
  }
  return out;
}
