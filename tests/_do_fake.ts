// In-process Durable Objects for the resumable Workers store: a namespace
// whose objects are made on first use from a class (as
// createResumableUploadObject makes), each with a storage that keeps
// copies of its values (as a Durable Object's storage serializes them),
// and an eviction that drops every live object, keeping only its storage.

import type {
  DurableObjectNamespaceLike,
  DurableObjectStorageLike,
} from "../lib/runtime/resumable_workers_store.ts";

type ObjectClass = new (
  state: { storage: DurableObjectStorageLike },
  env: Record<string, unknown>,
) => { fetch(request: Request): Promise<Response> };

/** A Durable Object's storage in memory; values are copied in and out. */
export class FakeStorage implements DurableObjectStorageLike {
  readonly values = new Map<string, unknown>();

  get<T = unknown>(key: string): Promise<T | undefined> {
    const value = this.values.get(key);
    return Promise.resolve(
      value === undefined ? undefined : structuredClone(value) as T,
    );
  }

  put(entries: Record<string, unknown>): Promise<void> {
    // Cloudflare's limits, which miniflare does not enforce: 128 keys a
    // call, 128 KiB a value (workerd asserts the first).
    const keys = Object.keys(entries);
    if (keys.length > 128) {
      return Promise.reject(
        new RangeError(`put() of ${keys.length} keys: at most 128`),
      );
    }
    for (const [key, value] of Object.entries(entries)) {
      if (value instanceof Uint8Array && value.byteLength > 128 * 1024) {
        return Promise.reject(
          new RangeError(`value ${key} of ${value.byteLength} bytes`),
        );
      }
    }
    for (const [key, value] of Object.entries(entries)) {
      this.values.set(key, structuredClone(value));
    }
    return Promise.resolve();
  }

  delete(keys: string[]): Promise<number> {
    if (keys.length > 128) {
      return Promise.reject(
        new RangeError(`delete() of ${keys.length} keys: at most 128`),
      );
    }
    let n = 0;
    for (const key of keys) if (this.values.delete(key)) n++;
    return Promise.resolve(n);
  }

  deleteAll(): Promise<void> {
    this.values.clear();
    return Promise.resolve();
  }
}

/** A namespace of `Class`'s objects, by name, with their storages. */
export class FakeNamespace implements DurableObjectNamespaceLike {
  readonly storages = new Map<string, FakeStorage>();
  readonly #live = new Map<string, { fetch(r: Request): Promise<Response> }>();
  readonly #class: ObjectClass;
  readonly #env: Record<string, unknown>;

  constructor(objectClass: ObjectClass, env: Record<string, unknown>) {
    this.#class = objectClass;
    this.#env = env;
  }

  idFromName(name: string): unknown {
    return name;
  }

  get(id: never): { fetch(request: Request): Promise<Response> } {
    const name = id as string;
    return {
      fetch: (request) => {
        let object = this.#live.get(name);
        if (object === undefined) {
          let storage = this.storages.get(name);
          if (storage === undefined) {
            storage = new FakeStorage();
            this.storages.set(name, storage);
          }
          object = new this.#class({ storage }, this.#env);
          this.#live.set(name, object);
        }
        return object.fetch(request);
      },
    };
  }

  /** Every object evicted: what it held in memory is lost. */
  evict(): void {
    this.#live.clear();
  }
}
