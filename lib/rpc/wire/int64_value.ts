import type { MessageType } from "./message_type.ts";
import { WireReader, WireWriter } from "./_protobuf.ts";
import { allocBytes } from "./_alloc.ts";
import { quote } from "../protocol/_quote.ts";

const MIN_INT64 = -(1n << 63n);
const MAX_INT64 = (1n << 63n) - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const EMPTY = new Uint8Array(0);

function checkRange(value: bigint, what: string): bigint {
  if (typeof value !== "bigint") {
    throw new TypeError(
      `Cannot ${what} Int64Value: expected a bigint, got ${typeof value}`,
    );
  }
  if (value < MIN_INT64 || value > MAX_INT64) {
    throw new RangeError(
      `Cannot ${what} Int64Value: ${value} is outside the int64 range`,
    );
  }
  return value;
}

function encodeBinary(value: bigint): Uint8Array {
  if (typeof value === "bigint" && value > 0n && value <= MAX_SAFE) {
    // Fast path: tag 0x08 and a varint of at most 8 bytes, written into
    // allocBytes's bytes (a slab view where a new ArrayBuffer per message is
    // the costly part, as under Deno; an array of its own under Bun).
    let n = Number(value);
    if (n < 0x10000000) {
      // Up to 28 bits: 32-bit integer operations.
      const length = n < 0x80 ? 2 : n < 0x4000 ? 3 : n < 0x200000 ? 4 : 5;
      const out = allocBytes(length);
      out[0] = 0x08;
      let i = 1;
      while (n >= 0x80) {
        out[i++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
      out[i] = n;
      return out;
    }
    let length = 6;
    for (let m = n / 0x10000000; m >= 0x80; m /= 0x80) length++;
    const out = allocBytes(length);
    out[0] = 0x08;
    let i = 1;
    while (n >= 0x80) {
      out[i++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    out[i] = n;
    return out;
  }
  checkRange(value, "encode");
  // proto3: the default value 0 is not written, so 0 is the empty message.
  if (value === 0n) return EMPTY;
  // Negative values are written as their 64-bit two's complement: 10 bytes;
  // values past 2^53 take the general path too.
  return new WireWriter().tag(1, 0).uint64(BigInt.asUintN(64, value))
    .finish();
}

function decodeBinary(bytes: Uint8Array): bigint {
  // Fast path: field 1's tag (0x08) and a varint of 1 to 7 bytes (at most
  // 49 bits, exact as a number) that ends the message: one BigInt, no
  // reader, no tag array, no 64-bit BigInt arithmetic.
  const length = bytes.byteLength;
  if (length >= 2 && length <= 8 && bytes[0] === 0x08) {
    let n = 0;
    let scale = 1;
    for (let i = 1; i < length; i++) {
      const b = bytes[i];
      if (i === length - 1) {
        if (b < 0x80) return BigInt(n + b * scale);
      } else if (b < 0x80) {
        break; // the varint ends early: more fields follow
      }
      n += (b & 0x7f) * scale;
      scale *= 0x80;
    }
  }
  const reader = new WireReader(bytes, "Int64Value");
  let value = 0n;
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      if (wireType !== 0) {
        reader.fail(`field 1 has wire type ${wireType}, expected 0 (varint)`);
      }
      value = BigInt.asIntN(64, reader.uint64());
    } else {
      reader.skip(wireType, field); // unknown fields are skipped
    }
  }
  return value;
}

function encodeJson(value: bigint): Uint8Array {
  // proto3 JSON: a wrapper is its wrapped value; int64 is a decimal string.
  return encoder.encode(`"${checkRange(value, "encode")}"`);
}

function decodeJson(bytes: Uint8Array): bigint {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    throw new SyntaxError(`Cannot decode Int64Value: invalid JSON`, { cause });
  }
  if (typeof json === "string") {
    if (!/^-?[0-9]+$/.test(json)) {
      throw new SyntaxError(
        `Cannot decode Int64Value: ${quote(json)} is not an integer`,
      );
    }
    // An int64 has at most 19 digits: refuse a long string before BigInt
    // spends time on it.
    const value = json.length > 40 ? MAX_INT64 + 1n : BigInt(json);
    if (value < MIN_INT64 || value > MAX_INT64) {
      throw new SyntaxError(
        `Cannot decode Int64Value: ${quote(json)} is outside the int64 range`,
      );
    }
    return value;
  }
  if (typeof json === "number") {
    if (!Number.isSafeInteger(json)) {
      throw new SyntaxError(
        `Cannot decode Int64Value: ${
          quote(String(json))
        } is not an exact integer; send int64 values as strings`,
      );
    }
    return BigInt(json);
  }
  throw new SyntaxError(
    `Cannot decode Int64Value: expected a string or a number, got ${
      json === null ? "null" : typeof json
    }`,
  );
}

/**
 * `google.protobuf.Int64Value` as an exact `bigint`: the binary codec writes
 * field 1 as a varint (negative values as 10-byte two's complement, 0 as the
 * empty message), skips unknown fields and refuses malformed or over-long
 * varints with a `SyntaxError`; the JSON codec follows the proto3 JSON
 * mapping (a decimal string, such as `"-42"`; plain JSON numbers are
 * accepted when they are exact). Values outside the int64 range are refused
 * with a `RangeError`.
 *
 * @example Round-trip the smallest int64
 * ```ts
 * import { Int64Value } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const bytes = Int64Value.proto.encode(-(2n ** 63n));
 * assert.equal(bytes.length, 11); // tag + 10-byte varint
 * assert.equal(Int64Value.proto.decode(bytes), -(2n ** 63n));
 * assert.equal(new TextDecoder().decode(Int64Value.json!.encode(55n)), '"55"');
 * ```
 */
export const Int64Value: MessageType<bigint> = {
  typeName: "google.protobuf.Int64Value",
  proto: { encode: encodeBinary, decode: decodeBinary },
  json: { encode: encodeJson, decode: decodeJson },
};
