/**
 * Cloudflare refuses a SQLite string or BLOB (and a row) over 2 MB; workerd does not, so a value
 * that would hang a run in production passes locally. This wraps `SqlStorage.prototype.exec` so a
 * statement binding a value over the limit throws, as Cloudflare would, for every Durable Object
 * of the isolate (they share the prototype). It also refuses a statement whose bound values
 * together pass the limit: for an INSERT that is the row (an UPDATE's row it cannot see whole).
 */
export const SQLITE_MAX_VALUE_BYTES = 2_000_000;

const INSTALLED = Symbol.for("spindle.sqliteGuard");

/** Installs the guard on the prototype of `sql` (once per isolate). */
export function installSqliteGuard(sql: SqlStorage): void {
  const proto = Object.getPrototypeOf(sql) as SqlStorage & { [INSTALLED]?: true };
  if (proto[INSTALLED]) return;
  const exec = proto.exec;
  proto.exec = function (this: SqlStorage, query: string, ...bindings: unknown[]) {
    let total = 0;
    for (const [i, value] of bindings.entries()) {
      const size = byteSize(value);
      if (size > SQLITE_MAX_VALUE_BYTES) {
        throw new Error(`SQLITE_TOOBIG: string or blob too big (binding ${i + 1} is ${size} bytes, the limit is ${SQLITE_MAX_VALUE_BYTES}): ${query.slice(0, 80)}`);
      }
      total += size;
    }
    if (total > SQLITE_MAX_VALUE_BYTES) {
      throw new Error(`SQLITE_TOOBIG: row too big (the bound values total ${total} bytes, the limit is ${SQLITE_MAX_VALUE_BYTES}): ${query.slice(0, 80)}`);
    }
    return exec.call(this, query, ...(bindings as SqlStorageValue[]));
  } as SqlStorage["exec"];
  proto[INSTALLED] = true;
}

function byteSize(value: unknown): number {
  if (typeof value === "string") {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: count exactly only when it could matter.
    return value.length * 3 <= 64 * 1024 ? value.length * 3 : new TextEncoder().encode(value).byteLength;
  }
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return value.byteLength;
  return 0;
}
