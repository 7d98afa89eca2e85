/** The most intervals open at any one instant, per key (an end at t comes before a start at t). */
export function maxOverlap(entries: { keys: string[]; startedAt: number; endedAt: number | null }[]): Map<string, number> {
  const events: { key: string; at: number; delta: number }[] = [];
  for (const e of entries) {
    for (const key of e.keys) {
      events.push({ key, at: e.startedAt, delta: 1 });
      events.push({ key, at: e.endedAt ?? Number.MAX_SAFE_INTEGER, delta: -1 });
    }
  }
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  const open = new Map<string, number>();
  const max = new Map<string, number>();
  for (const ev of events) {
    const n = (open.get(ev.key) ?? 0) + ev.delta;
    open.set(ev.key, n);
    max.set(ev.key, Math.max(max.get(ev.key) ?? 0, n));
  }
  return max;
}
