/**
 * Layer 2: HTTP flows as fetch handlers and clients — streaming upload,
 * receive and forward.
 *
 * @module
 */

export { fetchDuplex, type FetchDuplexOptions } from "./fetch_duplex.ts";
