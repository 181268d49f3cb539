// One length-prefixed frame as bytes: the flag byte, the 4-byte big-endian
// length and the data. For frames sent whole (a unary request, a
// gRPC-Web trailer frame, Connect's EndStreamResponse); streams of frames
// go through FrameEncoderStream.

import type { Frame } from "./frame_decoder.ts";

/** Encodes `frame` with its 5-byte prefix into a new array. */
export function encodeFrame(frame: Frame): Uint8Array<ArrayBuffer> {
  const { flags, data } = frame;
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}
