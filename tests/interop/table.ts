// The interop table (docs/interop.md): one row per server, client, protocol
// and runtime, one column per case. The peers' known limitations are listed
// here with their reasons; any other failure is a failure.

import { BIDI_HALF, type CaseResult, CASES } from "./cases.ts";
import type { Row } from "./matrix.ts";

/** A peer's or runtime's limitation: the cells it covers and its sign. */
interface Limitation {
  /** The footnote. */
  reason: string;
  /** What the summary calls the cells it covers. */
  short: string;
  /** The cells it covers (`error`: the case's error, if it failed). */
  applies(row: Row, name: string, error?: string): boolean;
  /** How the covered cells fail (they may also pass). */
  error: RegExp;
}

/** The cases that call FullDuplexCall only. */
const BIDI = new Set([
  "ping_pong",
  "empty_stream",
  "cancel_after_first_response",
  "timeout_on_sleeping_server",
]);

/**
 * The cases that make a unary call, then a FullDuplexCall: their failure
 * starts with BIDI_HALF when it was the FullDuplexCall's.
 */
const MIXED = new Set(["custom_metadata", "status_code_and_message"]);

/** connect-node's server on HTTP/1.1, which refuses FullDuplexCall. */
const refusesBidi = (row: Row) =>
  row.server === "connect-node" && row.protocol.endsWith("HTTP/1.1");

export const LIMITATIONS: Limitation[] = [
  {
    reason: "connect-node's server refuses bidi streams over HTTP/1.1: it " +
      "answers FullDuplexCall with 505 HTTP Version Not Supported (and a " +
      "fetch request body cannot stream in full duplex over HTTP/1.1 " +
      "either). Every cell so marked is a FullDuplexCall that got the 505; " +
      "custom_metadata and status_code_and_message also make a unary call " +
      'first, which passed ("unary pass, bidi n/a")',
    short: "connect-node's server refuses full duplex over HTTP/1.1",
    applies: (row, name, error) =>
      refusesBidi(row) &&
      (BIDI.has(name) ||
        (MIXED.has(name) && (error ?? "").startsWith(BIDI_HALF))),
    error: /HTTP status 505/,
  },
  {
    reason: "Deno's node:http2 aborted sluice's server process during the " +
      "run (an nghttp2 assertion, see known-runtime-issues.md (e)); the " +
      "cases still in flight on it failed with a reset stream or connection",
    short: "Deno's node:http2 aborted sluice's server",
    applies: (row) => row.serverAborted !== undefined,
    error:
      /CANCEL|ECONNRESET|ECONNREFUSED|stream closed|socket hang up|Premature close|unavailable|closed/i,
  },
];

/**
 * The footnote of a timeout_on_sleeping_server that passed against a server
 * that refuses the FullDuplexCall it makes.
 */
const RACE_NOTE = LIMITATIONS.length + 1;
const RACE = "timeout_on_sleeping_server against connect-node over " +
  "HTTP/1.1 never reaches a sleeping server: the FullDuplexCall is refused " +
  "with 505 at once [1]. The client reports DEADLINE_EXCEEDED, which the " +
  "case checks, when its 1 ms deadline fires before the 505 arrives, and " +
  "the 505 (UNKNOWN) when the answer comes first: a race between a timer " +
  "and the loopback, which either runtime can win or lose from run to run " +
  "(with all cases running at once). A pass here shows the client's " +
  "deadline, not the server's";

/** How one cell came out. */
export type Outcome =
  | { kind: "pass"; note?: number }
  | { kind: "limited"; note: number; half: boolean }
  | { kind: "fail"; error: string };

/** The outcome of one case in one row. */
export function outcome(row: Row, result: CaseResult): Outcome {
  if (result.ok) {
    return result.case === "timeout_on_sleeping_server" && refusesBidi(row)
      ? { kind: "pass", note: RACE_NOTE }
      : { kind: "pass" };
  }
  const error = result.error ?? "";
  const index = LIMITATIONS.findIndex((l) =>
    l.applies(row, result.case, error) && l.error.test(error)
  );
  return index >= 0
    ? { kind: "limited", note: index + 1, half: error.startsWith(BIDI_HALF) }
    : { kind: "fail", error };
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

/** The text of one cell. */
function cell(o: Outcome): string {
  switch (o.kind) {
    case "pass":
      return o.note ? `pass [${o.note}]` : "pass";
    case "limited":
      return o.half ? `unary pass, bidi n/a [${o.note}]` : `n/a [${o.note}]`;
    case "fail":
      return "**FAIL**";
  }
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
  let raced = 0;
  const limited = LIMITATIONS.map(() => ({ cells: 0, halves: 0 }));
  for (const row of rows) {
    const cells = names.map((name) => {
      const result = row.results.find((r) => r.case === name);
      if (!result) return "not run";
      const o = outcome(row, result);
      if (o.kind === "limited") {
        limited[o.note - 1].cells++;
        if (o.half) limited[o.note - 1].halves++;
      }
      if (o.kind === "pass" && o.note === RACE_NOTE) raced++;
      return cell(o);
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
  const notApplicable = limited.reduce((n, l) => n + l.cells, 0);
  const why = LIMITATIONS.flatMap((l, i) =>
    limited[i].cells === 0 ? [] : [
      `${
        notApplicable === limited[i].cells ? "" : `${limited[i].cells}: `
      }${l.short} [${i + 1}]${
        limited[i].halves > 0
          ? ` (${limited[i].halves} of these are the bidi half of ${
            [...MIXED].join(" and ")
          }, whose unary half passed)`
          : ""
      }`,
    ]
  );
  const summary = `Of ${total} cells: **${passed} pass**${
    raced > 0
      ? ` (${raced} of them timeout_on_sleeping_server, see [${RACE_NOTE}])`
      : ""
  }; **${notApplicable} not applicable**${
    why.length > 0 ? `, because ${why.join("; ")}` : ""
  }; **${failures.length} fail**.`;
  return [
    ...lines,
    "",
    summary,
    "",
    ...LIMITATIONS.map((l, i) => `[${i + 1}] ${l.reason}.`),
    `[${RACE_NOTE}] ${RACE}.`,
    ...(aborted.length > 0 ? ["", ...aborted] : []),
    ...(failures.length > 0
      ? ["", "Failures:", "", ...failures.map((f) => `- ${f}`)]
      : []),
  ].join("\n");
}
