/**
 * Server-Sent Events, as the stream route writes them. A chunk's lines become `data:` lines (an
 * `EventSource` joins them with `\n` again; a lone `\r` comes back as `\n`).
 */
export function sseEvent(event: { id?: string | number; event?: string; data: string }): string {
  let text = "";
  if (event.event !== undefined) text += `event: ${event.event}\n`;
  if (event.id !== undefined) text += `id: ${event.id}\n`;
  for (const line of event.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  return `${text}\n`;
}

/**
 * Where a reader resumes: `Last-Event-ID` (the offset of the last chunk it received) wins over
 * `?offset=` (the first offset it wants); neither means from the start. Null for a header that is
 * not an offset.
 */
export function resumeOffset(lastEventId: string | null | undefined, offset: number | undefined): number | null {
  if (lastEventId !== null && lastEventId !== undefined && lastEventId !== "") {
    return /^\d{1,15}$/.test(lastEventId.trim()) ? Number(lastEventId.trim()) + 1 : null;
  }
  return offset ?? 0;
}
