// Protobuf wire format: the few pieces this library needs (varints,
// length-delimited fields, skipping unknown fields). Decoders throw
// SyntaxError on malformed input.

const MAX_UINT64 = (1n << 64n) - 1n;

/** How deep groups may nest in a skipped field. */
export const MAX_GROUP_DEPTH = 100;

/** A cursor over a Protobuf-encoded message. */
export class WireReader {
  pos = 0;
  constructor(readonly bytes: Uint8Array, readonly what: string) {}

  get done(): boolean {
    return this.pos >= this.bytes.byteLength;
  }

  fail(reason: string): never {
    throw new SyntaxError(`Cannot decode ${this.what}: ${reason}`);
  }

  /**
   * Reads a varint of at most 10 bytes as an unsigned 64-bit bigint. Refuses
   * a truncated varint, one longer than 10 bytes, and a 10th byte above 1
   * (a value over 64 bits).
   */
  uint64(): bigint {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    // Bytes 1 to 4 fill bits 0..27 of lo.
    for (; shift < 28; shift += 7) {
      const b = this.#byte();
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) return BigInt(lo >>> 0);
    }
    // Byte 5: bits 28..31 of lo and bits 0..2 of hi.
    let b = this.#byte();
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b < 0x80) return toBigInt(lo, hi);
    // Bytes 6 to 9: bits 3..30 of hi.
    for (shift = 3; shift < 31; shift += 7) {
      b = this.#byte();
      hi |= (b & 0x7f) << shift;
      if (b < 0x80) return toBigInt(lo, hi);
    }
    // Byte 10: bit 31 of hi only.
    b = this.#byte();
    if (b > 1) {
      this.fail(
        b >= 0x80
          ? `varint at offset ${this.pos - 10} is longer than 10 bytes`
          : `varint at offset ${this.pos - 10} exceeds 64 bits`,
      );
    }
    hi |= b << 31;
    return toBigInt(lo, hi);
  }

  /** Reads a varint that must fit in 32 bits (tags, lengths). */
  uint32(): number {
    const value = this.uint64();
    if (value > 0xffffffffn) this.fail(`varint ${value} exceeds 32 bits`);
    return Number(value);
  }

  /** Reads a length-delimited field's bytes (a view, no copy). */
  lengthDelimited(): Uint8Array {
    const length = this.uint32();
    const end = this.pos + length;
    if (end > this.bytes.byteLength) {
      this.fail(
        `length ${length} at offset ${this.pos} runs past the end of the message`,
      );
    }
    const view = this.bytes.subarray(this.pos, end);
    this.pos = end;
    return view;
  }

  /**
   * Skips a field of the given wire type (after its tag). Groups nest at
   * most MAX_GROUP_DEPTH deep (as Protobuf's own recursion limit), so a
   * malformed message cannot exhaust the stack.
   */
  skip(wireType: number, fieldNumber: number, depth = 0): void {
    switch (wireType) {
      case 0:
        this.uint64();
        return;
      case 1:
        this.#advance(8);
        return;
      case 2:
        this.lengthDelimited();
        return;
      case 3: {
        // A group: skip fields up to the matching end-group tag.
        if (depth >= MAX_GROUP_DEPTH) {
          this.fail(`groups nest deeper than ${MAX_GROUP_DEPTH}`);
        }
        while (true) {
          if (this.done) this.fail(`group ${fieldNumber} is not closed`);
          const tag = this.uint32();
          const type = tag & 7;
          const field = tag >>> 3;
          if (type === 4) {
            if (field !== fieldNumber) {
              this.fail(
                `end of group ${field} does not match group ${fieldNumber}`,
              );
            }
            return;
          }
          this.skip(type, field, depth + 1);
        }
      }
      case 5:
        this.#advance(4);
        return;
      default:
        this.fail(`invalid wire type ${wireType} for field ${fieldNumber}`);
    }
  }

  /** Reads a tag; returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const tag = this.uint32();
    const field = tag >>> 3;
    if (field === 0) this.fail(`invalid field number 0 at offset ${this.pos}`);
    return [field, tag & 7];
  }

  #byte(): number {
    if (this.pos >= this.bytes.byteLength) {
      this.fail("truncated varint at the end of the message");
    }
    return this.bytes[this.pos++];
  }

  #advance(n: number): void {
    if (this.pos + n > this.bytes.byteLength) {
      this.fail(`fixed-size field runs past the end of the message`);
    }
    this.pos += n;
  }
}

function toBigInt(lo: number, hi: number): bigint {
  hi >>>= 0;
  lo >>>= 0;
  if (hi < 0x200000) return BigInt(hi * 0x100000000 + lo); // < 2^53: exact
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** A growable buffer for writing Protobuf. */
export class WireWriter {
  #buf = new Uint8Array(16);
  #len = 0;

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.byteLength) return;
    const next = new Uint8Array(
      Math.max(this.#buf.byteLength * 2, this.#len + n),
    );
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  /** Writes an unsigned 64-bit value (0 to 2^64-1) as a varint. */
  uint64(value: bigint): this {
    if (value < 0n || value > MAX_UINT64) {
      throw new RangeError(`Cannot encode varint: ${value} is not a uint64`);
    }
    this.#reserve(10);
    if (value <= 0xffffffffn) return this.#small(Number(value));
    let lo = Number(value & 0xffffffffn);
    let hi = Number(value >> 32n);
    const buf = this.#buf;
    // 28 bits of lo in 4 bytes.
    for (let i = 0; i < 4; i++) {
      buf[this.#len++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    // 4 bits of lo and 3 of hi.
    let b = (lo & 0x0f) | ((hi & 0x07) << 4);
    hi >>>= 3;
    while (hi !== 0) {
      buf[this.#len++] = b | 0x80;
      b = hi & 0x7f;
      hi >>>= 7;
    }
    buf[this.#len++] = b;
    return this;
  }

  /** Writes a value 0 to 2^32-1 as a varint. */
  uint32(value: number): this {
    this.#reserve(5);
    return this.#small(value >>> 0);
  }

  #small(value: number): this {
    const buf = this.#buf;
    while (value > 0x7f) {
      buf[this.#len++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    buf[this.#len++] = value;
    return this;
  }

  /** Writes a tag. */
  tag(fieldNumber: number, wireType: number): this {
    return this.uint32(((fieldNumber << 3) | wireType) >>> 0);
  }

  /** Writes length-prefixed bytes. */
  bytes(value: Uint8Array): this {
    this.uint32(value.byteLength);
    this.#reserve(value.byteLength);
    this.#buf.set(value, this.#len);
    this.#len += value.byteLength;
    return this;
  }

  /** The bytes written so far. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}
