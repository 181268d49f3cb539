// gRPC-Web uses gRPC's headers; it adds none that this library needs beyond
// x-grpc-web, which clients send to mark gRPC-Web requests, and Accept,
// with which a client asks for a response in the text format.

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

export const headerAccept = "accept";
