// The one shape of the atomic file sink's temporary files, shared by the sink
// and its sweeper (@sluice/streams/fs) and by safeFileName, which refuses
// user names of that shape so that a sweep can never touch a user's file.

/** The temporary file name for a target named `name`, with a random UUID. */
export function temporaryName(name: string, uuid: string): string {
  return `.${name}.${uuid}.partial`;
}

/** Matches the end of a name that the sink's temporaries end with. */
export const TEMPORARY_SUFFIX =
  /\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.partial$/i;

/** Matches a whole temporary file name. */
export const TEMPORARY_NAME =
  /^\..+\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.partial$/i;

/** The bytes a temporary name adds to its target's name. */
export const TEMPORARY_EXTRA_BYTES = 1 + 1 + 36 + ".partial".length;
