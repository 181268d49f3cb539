// The interop table (docs/interop.md): one row per server, client, protocol
// and runtime, one column per case. The peers' known limitations are listed
// here with their reasons; any other failure is a failure.

import { type CaseResult, CASES } from "./cases.ts";
import type { Row } from "./matrix.ts";

/** A peer's or runtime's limitation: the cells it covers and its sign. */
interface Limitation {
  /** The footnote. */
  reason: string;
  /** The cells it covers. */
  applies(row: Row, name: string): boolean;
  /** How the covered cells fail (they may also pass). */
  error: RegExp;
}

/** The cases that open a bidi stream (FullDuplexCall). */
const BIDI = new Set([
  "ping_pong",
  "empty_stream",
  "cancel_after_first_response",
  "timeout_on_sleeping_server",
  "custom_metadata",
  "status_code_and_message",
]);

export const LIMITATIONS: Limitation[] = [
  {
    reason: "connect-node's server refuses bidi streams over HTTP/1.1: it " +
      "answers FullDuplexCall with 505 HTTP Version Not Supported (and a " +
      "fetch request body cannot stream in full duplex over HTTP/1.1 either)",
    applies: (row, name) =>
      row.server === "connect-node" && row.protocol.endsWith("HTTP/1.1") &&
      BIDI.has(name),
    error: /HTTP status 505/,
  },
  {
    reason: "Deno's node:http2 aborted sluice's server process during the " +
      "run (an nghttp2 assertion, see known-runtime-issues.md (e)); the " +
      "cases still in flight on it failed with a reset stream or connection",
    applies: (row) => row.serverAborted !== undefined,
    error:
      /CANCEL|ECONNRESET|ECONNREFUSED|stream closed|socket hang up|Premature close|unavailable|closed/i,
  },
];

/** How one cell came out. */
export type Outcome =
  | { kind: "pass" }
  | { kind: "limited"; note: number }
  | { kind: "fail"; error: string };

/** The outcome of one case in one row. */
export function outcome(row: Row, result: CaseResult): Outcome {
  if (result.ok) return { kind: "pass" };
  const index = LIMITATIONS.findIndex((l) =>
    l.applies(row, result.case) && l.error.test(result.error ?? "")
  );
  return index >= 0
    ? { kind: "limited", note: index + 1 }
    : { kind: "fail", error: result.error ?? "" };
}

/** The cells that failed for no known reason. */
export function unexpected(rows: Row[]): string[] {
  const out: string[] = [];
  for (const row of rows) {
    const names = new Set(row.results.map((r) => r.case));
    for (const name of Object.keys(CASES)) {
      if (!names.has(name)) out.push(`${label(row)}: ${name} did not run`);
    }
    for (const result of row.results) {
      const o = outcome(row, result);
      if (o.kind === "fail") {
        out.push(`${label(row)}: ${result.case}: ${o.error}`);
      }
    }
  }
  return out;
}

function label(row: Row): string {
  return `${row.server} server, ${row.client} client, ${row.protocol}, ${row.runtime}`;
}

/** The table in Markdown, with its summary and footnotes. */
export function renderTable(rows: Row[]): string {
  const names = Object.keys(CASES);
  const lines = [
    `| server | client | protocol | sluice on | passed | ${
      names.join(" | ")
    } |`,
    `| --- | --- | --- | --- | --- | ${names.map(() => ":-:").join(" | ")} |`,
  ];
  let passed = 0;
  let total = 0;
  for (const row of rows) {
    const cells = names.map((name) => {
      const result = row.results.find((r) => r.case === name);
      if (!result) return "not run";
      const o = outcome(row, result);
      return o.kind === "pass"
        ? "pass"
        : o.kind === "limited"
        ? `n/a [${o.note}]`
        : "**FAIL**";
    });
    const ok = row.results.filter((r) => r.ok).length;
    passed += ok;
    total += names.length;
    lines.push(
      `| ${row.server} | ${row.client} | ${row.protocol} | ${row.runtime} | ${ok}/${names.length} | ${
        cells.join(" | ")
      } |`,
    );
  }
  const failures = unexpected(rows);
  const aborted = [
    ...new Set(
      rows.filter((r) => r.serverAborted).map((r) =>
        `sluice's server under ${r.runtime} was aborted by the runtime: \`${r.serverAborted}\``
      ),
    ),
  ];
  return [
    ...lines,
    "",
    `${passed} of ${total} cells pass; ${failures.length} fail for no known reason.`,
    "",
    ...LIMITATIONS.map((l, i) => `[${i + 1}] ${l.reason}.`),
    ...(aborted.length > 0 ? ["", ...aborted] : []),
    ...(failures.length > 0
      ? ["", "Failures:", "", ...failures.map((f) => `- ${f}`)]
      : []),
  ].join("\n");
}
