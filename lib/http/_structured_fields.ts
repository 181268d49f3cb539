// Structured Fields (RFC 8941) as the headers sluice reads need them: a
// dictionary's members, split where its commas are not quoted.

/**
 * A Structured Fields dictionary's members (RFC 8941 §3.2): split at the
 * commas outside quoted strings, whose parameters (`;note="a,b"`) may hold
 * commas of their own; `undefined` for an unterminated string.
 */
export function dictionaryMembers(value: string): string[] | undefined {
  if (!value.includes('"')) return value.split(",");
  const members: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const char = value[i];
    if (quoted && char === "\\") i++;
    else if (char === '"') quoted = !quoted;
    else if (char === "," && !quoted) {
      members.push(value.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  members.push(value.slice(start));
  return members;
}
