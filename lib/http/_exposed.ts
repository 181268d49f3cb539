// A response from another origin shows a page only the headers the server
// exposes: a header found missing there may be hidden, not absent.

/**
 * What to add to a message about header `name` missing from `response`:
 * for a browser's response from another origin (`type` `"cors"`), that
 * the server may not have exposed it; else nothing.
 */
export function hiddenHeaderHint(response: Response, name: string): string {
  return response.type === "cors"
    ? ` (the response came from another origin, where a page sees ${name} only if the server lists it in Access-Control-Expose-Headers)`
    : "";
}
