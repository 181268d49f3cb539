/**
 * Layer 2: HTTP flows as fetch handlers and clients — streaming upload,
 * receive and forward.
 *
 * @module
 */
