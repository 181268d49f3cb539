/**
 * Layer 1: generic stream building blocks on WHATWG streams — byte limits,
 * progress, read-ahead, operators and the duplex stream.
 *
 * @module
 */
