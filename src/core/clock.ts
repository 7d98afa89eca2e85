/**
 * The engine's clock. Every timer, deadline and timestamp reads it, so a test can move time forward
 * (a 24 h sleep resumed at 23 h) without waiting. Production never sets an offset.
 */
let offsetMs = 0;

export const clock = {
  now(): number {
    return Date.now() + offsetMs;
  },
};

/** Test hook: shifts the engine's notion of now by `ms` (cumulative). */
export function advanceClock(ms: number): void {
  offsetMs += ms;
}

export function resetClock(): void {
  offsetMs = 0;
}

export function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}
