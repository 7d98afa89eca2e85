/** One chunk a task put on its run's stream, at its place (`offset`, from 0) in the stream. */
export interface StreamChunk {
  offset: number;
  data: string;
}

/** The most bytes (UTF-8) one chunk may hold. */
export const MAX_STREAM_CHUNK_BYTES = 64 * 1024;
/** The most chunks one run's stream may hold; a task that puts more gets `stream.full`. */
export const MAX_STREAM_CHUNKS = 10_000;

/**
 * A run's stream: what its tasks put with `ctx.putStream`, in the order it was recorded. A chunk is
 * identified by its task, attempt and its place among the chunks that attempt put, so the same
 * chunk sent again (a retried call, a durable task replaying up to a wait) is stored once.
 */
export class StreamStore {
  constructor(private readonly sql: SqlStorage) {}

  /** Records chunks `first`, `first + 1`, … of an attempt; answers the ones that are new. */
  append(task: string, attempt: number, first: number, chunks: readonly string[], now: number): StreamChunk[] {
    const added: StreamChunk[] = [];
    let next = this.length();
    for (const [i, data] of chunks.entries()) {
      const written = this.sql.exec(
        "INSERT INTO stream (position, task, attempt, chunk, data, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task, attempt, chunk) DO NOTHING",
        next,
        task,
        attempt,
        first + i,
        data,
        now,
      ).rowsWritten;
      if (written > 0) added.push({ offset: next++, data });
    }
    return added;
  }

  /** How many chunks the stream holds (the offset the next one gets). */
  length(): number {
    return this.sql.exec<{ n: number | null }>("SELECT MAX(position) + 1 AS n FROM stream").toArray()[0]?.n ?? 0;
  }

  /** The chunks from `offset` on, at most `limit`. */
  from(offset: number, limit: number): StreamChunk[] {
    return this.sql
      .exec<{ position: number; data: string }>("SELECT position, data FROM stream WHERE position >= ? ORDER BY position LIMIT ?", offset, limit)
      .toArray()
      .map((r) => ({ offset: r.position, data: r.data }));
  }
}
