/**
 * sluice: HTTP streaming on web standards for Deno, Bun and Cloudflare
 * Workers.
 *
 * @module
 */
