// gRPC-Web uses gRPC's headers; it adds none that this library needs beyond
// x-grpc-web, which clients send to mark gRPC-Web requests.

export {
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerMessage,
  headerStatus,
  headerStatusDetails,
  headerTimeout,
  parseTimeout,
} from "../protocol_grpc/headers.ts";

export const headerXGrpcWeb = "x-grpc-web";
