import { sseEvent } from "../core/sse";
import type { StreamChunk } from "../run/stream-store";

export interface StreamSource {
  /** The first offset the reader wants. */
  from: number;
  /** The next chunks from `offset` on (a page of them), oldest first. */
  read: (offset: number) => StreamChunk[];
  /** The run's final status once it has ended, else null. */
  ended: () => string | null;
  /** Resolves at the object's next write. */
  nextWrite: () => Promise<void>;
}

/**
 * A run's stream as Server-Sent Events: every chunk from `from` on with its offset as the event id,
 * read from storage as it grows (so nothing is skipped or sent twice whatever the timing), then an
 * `end` event with the run's status once it has ended and every chunk was sent.
 */
export function streamResponse(source: StreamSource): Response {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const encoder = new TextEncoder();
  const pump = async () => {
    let next = source.from;
    for (;;) {
      const chunks = source.read(next);
      for (const c of chunks) await writer.write(encoder.encode(sseEvent({ id: c.offset, data: c.data })));
      if (chunks.length > 0) {
        next = chunks[chunks.length - 1]!.offset + 1;
        continue;
      }
      const status = source.ended();
      if (status !== null) {
        await writer.write(encoder.encode(sseEvent({ event: "end", data: JSON.stringify({ status, length: next }) })));
        await writer.close();
        return;
      }
      await source.nextWrite();
    }
  };
  // A reader that goes away makes a write fail: the pump ends there.
  pump().catch(() => writer.abort().catch(() => {}));
  return new Response(readable, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
}
