/** The state of one resumable upload, as a store keeps it. */
export interface ResumableUpload {
  /**
   * The upload's id: 128 random bits in base64url, the last segment of its
   * URL. Whoever knows it can append to, read the state of and cancel the
   * upload: it is a capability, to be kept as secret as the bytes.
   */
  id: string;
  /**
   * Bytes stored so far, all of them correct; they survive what the store
   * says they survive (the file store: the end of the process at once, a
   * power cut once checkpointed).
   */
  offset: number;
  /** The declared total length, once known. */
  length?: number;
  /** Whether the upload is complete and its object published. */
  complete: boolean;
  /** tus `Upload-Metadata`, as the client sent it. */
  metadata?: string;
  /** The expected SHA-256 of the whole upload (`Repr-Digest`), if given. */
  sha256?: Uint8Array;
  /** When the upload was created, in ms since the epoch. */
  createdAt: number;
  /** When an unfinished upload expires, in ms since the epoch. */
  expiresAt?: number;
}

/**
 * Where resumable uploads keep their state and bytes: `createResumableFileStore`
 * in `@sluice/streams/fs` (the file system) and `createResumableWorkersStore`
 * in `@sluice/streams/workers` (a Durable Object and R2). The handler holds
 * a per-upload lock around `append`, `truncate`, `complete` and `delete`.
 */
export interface ResumableStore {
  /** Records a new, empty upload. */
  create(upload: ResumableUpload): Promise<void>;
  /**
   * The upload's state, or `undefined` for an unknown id. Its `offset`
   * counts only bytes that are stored (and, after a restart, only those
   * that survived it).
   */
  get(id: string): Promise<ResumableUpload | undefined>;
  /** Sets the declared length of an upload created without one. */
  setLength(id: string, length: number): Promise<void>;
  /**
   * Opens a sink that appends at `offset` (the upload's current offset).
   * Closing it and aborting it both keep every byte written so far and move
   * the offset past them: an interrupted request still advances the upload.
   * With `whole` (a chunk with a checksum, verified before the sink is
   * closed), the bytes count only once it is closed: none of them moves the
   * offset, even after a crash, until `close()` resolves, and an abort keeps
   * none. A store that ignores `whole` keeps the bytes of a chunk whose
   * checksum failed until the handler's `truncate`, which a crash between
   * the two skips; one that honours it says so with `wholeAppends`.
   */
  append(
    id: string,
    offset: number,
    options?: ResumableAppendOptions,
  ): Promise<WritableStream<Uint8Array>>;
  /**
   * Whether `append` honours `whole`: the handler then never calls
   * `truncate` after a whole append that failed (nothing of it counts),
   * which could otherwise race another instance's append that succeeded.
   */
  readonly wholeAppends?: boolean;
  /**
   * Drops the bytes after `offset` (a chunk whose checksum failed, in a
   * store without `wholeAppends`); nothing when the upload's offset is
   * `offset` already.
   */
  truncate(id: string, offset: number): Promise<void>;
  /**
   * Reads the stored bytes from the start, to hash them on completion, or
   * gives `undefined` when they cannot be read before `complete` (parts of
   * an R2 multipart upload): the handler then hashes the published object
   * and deletes it if its digest is wrong.
   */
  read(id: string): Promise<ReadableStream<Uint8Array> | undefined>;
  /**
   * The SHA-256 of the stored bytes, if the store tracked it as they were
   * appended (the handler's own running hash is lost when another instance
   * or process served some of the appends).
   */
  digest?(id: string): Promise<Uint8Array | undefined>;
  /**
   * Publishes the complete object atomically, durably stored: before this
   * call no reader sees it, after it the whole object.
   */
  complete(id: string): Promise<void>;
  /** Deletes an upload, its bytes and (if complete) its record. */
  delete(id: string): Promise<void>;
}

/** Options of {@linkcode ResumableStore.append}. */
export interface ResumableAppendOptions {
  /**
   * The chunk counts whole or not at all: its bytes move the offset only
   * once the sink is closed (durably, as the store keeps its offsets), and
   * an abort, or a crash before the close, keeps none of them.
   *
   * @default {false}
   */
  whole?: boolean;
}
