// google.rpc.Status { int32 code = 1; string message = 2;
// repeated google.protobuf.Any details = 3; } with
// google.protobuf.Any { string type_url = 1; bytes value = 2; }, the
// payload of grpc-status-details-bin.

import type { ErrorDetail } from "../rpc_error.ts";
import { WireReader, WireWriter } from "./_protobuf.ts";

const TYPE_PREFIX = "type.googleapis.com/";

export interface StatusProto {
  code: number;
  message: string;
  details: ErrorDetail[];
}

export function encodeStatus(status: StatusProto): Uint8Array {
  const writer = new WireWriter();
  if (status.code !== 0) writer.tag(1, 0).uint32(status.code);
  if (status.message) {
    writer.tag(2, 2).bytes(new TextEncoder().encode(status.message));
  }
  for (const detail of status.details) {
    const any = new WireWriter()
      .tag(1, 2).bytes(new TextEncoder().encode(TYPE_PREFIX + detail.type))
      .tag(2, 2).bytes(detail.value)
      .finish();
    writer.tag(3, 2).bytes(any);
  }
  return writer.finish();
}

export function decodeStatus(bytes: Uint8Array): StatusProto {
  const reader = new WireReader(bytes, "google.rpc.Status");
  const status: StatusProto = { code: 0, message: "", details: [] };
  const text = new TextDecoder();
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === 0) {
      status.code = Number(BigInt.asIntN(32, reader.uint64()));
    } else if (field === 2 && wireType === 2) {
      status.message = text.decode(reader.lengthDelimited());
    } else if (field === 3 && wireType === 2) {
      const any = new WireReader(
        reader.lengthDelimited(),
        "google.protobuf.Any",
      );
      let type = "";
      let value = new Uint8Array(0);
      while (!any.done) {
        const [f, w] = any.tag();
        if (f === 1 && w === 2) type = text.decode(any.lengthDelimited());
        else if (f === 2 && w === 2) value = any.lengthDelimited().slice();
        else any.skip(w, f);
      }
      status.details.push({
        type: type.slice(type.lastIndexOf("/") + 1),
        value,
      });
    } else {
      reader.skip(wireType, field);
    }
  }
  return status;
}
