/**
 * Reading Server-Sent Events, with resumption: what `runRef.stream()` (and any client of the
 * engine's stream route) is built on. Runtime-neutral: it needs only `fetch`-style Responses.
 */
import { SpindleError } from "./errors.js";

export interface ServerSentEvent {
  /** The event's `id` (a stream chunk's offset), if it had one. */
  id: string | null;
  /** `message` unless the event named another type. */
  event: string;
  data: string;
}

/** Parses an event stream as the SSE specification says (lines, `data` joined by `\n`, comments skipped). */
export async function* parseEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let id: string | null = null;
  let event = "";
  let data: string[] = [];
  let sawData = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline: RegExpExecArray | null;
      while ((newline = /\r\n|\r|\n/.exec(buffer)) !== null) {
        // A lone \r at the end of the buffer may be the first half of \r\n: wait for more.
        if (newline[0] === "\r" && newline.index === buffer.length - 1) break;
        const line = buffer.slice(0, newline.index);
        buffer = buffer.slice(newline.index + newline[0].length);
        if (line === "") {
          if (sawData) yield { id, event: event || "message", data: data.join("\n") };
          event = "";
          data = [];
          sawData = false;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") {
          data.push(value);
          sawData = true;
        } else if (field === "event") event = value;
        else if (field === "id" && !value.includes("\0")) id = value;
      }
    }
  } finally {
    // Also when the reader stops early: the connection is closed, not left open.
    await reader.cancel().catch(() => {});
  }
}

export interface FollowOptions {
  /** The event type that ends the stream for good (no reconnection after it). */
  endEvent: string;
  /** Gives up after this many connections in a row that brought nothing new (default 5). */
  maxRetries?: number;
  /** The wait before the n-th retry in a row (default 250 ms × 2^n, at most 5 s). */
  retryDelayMs?: (attempt: number) => number;
}

/**
 * Follows an event stream across disconnects: `open(lastEventId)` opens it (again), passing the id
 * of the last event received so the server resumes right after it; events are yielded once each,
 * until the end event. A response that is not OK ends the iteration with `toError(response)`.
 */
export async function* followEventStream(
  open: (lastEventId: string | null) => Promise<Response>,
  toError: (response: Response) => Promise<Error>,
  options: FollowOptions,
): AsyncGenerator<ServerSentEvent> {
  const maxRetries = options.maxRetries ?? 5;
  const delay = options.retryDelayMs ?? ((n: number) => Math.min(250 * 2 ** n, 5_000));
  let lastEventId: string | null = null;
  let failures = 0;
  for (;;) {
    let progressed = false;
    let error: unknown = null;
    try {
      const response = await open(lastEventId);
      if (!response.ok || !response.body) throw Object.assign(await toError(response), { final: true });
      for await (const e of parseEventStream(response.body)) {
        if (e.event === options.endEvent) return;
        if (e.id !== null) lastEventId = e.id;
        progressed = true;
        yield e;
      }
    } catch (err) {
      if ((err as { final?: boolean }).final) throw err;
      error = err;
    }
    // The stream broke off before its end: reconnect where it stopped.
    if (progressed) failures = 0;
    else if (++failures > maxRetries) throw error ?? new Error(`the event stream broke off ${failures} times in a row without an event`);
    await new Promise((resolve) => setTimeout(resolve, delay(failures)));
  }
}

/**
 * A run's stream (what its tasks put with `ctx.putStream`), chunk by chunk as they come, from the
 * first; ends when the run has ended and every chunk was read. `open(lastEventId)` opens the
 * engine's stream route (`GET /api/v1/runs/{runId}/stream`); a connection that breaks off is resumed
 * after the last chunk received, so nothing is lost or repeated.
 */
export async function* runStream(open: (lastEventId: string | null) => Promise<Response>): AsyncGenerator<string, void, undefined> {
  for await (const event of followEventStream(open, streamError, { endEvent: "end" })) yield event.data;
}

/** The engine refused to open a stream (an unknown run, a bad token): its error, typed. */
async function streamError(res: Response): Promise<Error> {
  const body = (await res.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  return new SpindleError(body?.error?.code ?? `http.${res.status}`, body?.error?.message ?? `HTTP ${res.status}`);
}
