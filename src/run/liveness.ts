/**
 * Whether a running claim (one dispatch of a task: attempt and invocation) still has someone to
 * answer for it. The dispatch consumer that runs the claim on its worker, and will record its
 * outcome, sends a heartbeat every HEARTBEAT_INTERVAL_MS while it waits; the run keeps when it last
 * heard from each claim in memory only, so a heartbeat costs no write. A `liveness` timer, armed at
 * the start, looks again every LIVENESS_TIMEOUT_MS: a claim not heard from for that long is lost
 * (its consumer died with the outcome it was waiting for) and the run dispatches it again. The
 * first look after a start may come up to ALARM_SLACK_MS (1 s) early, to share an alarm already set
 * (for a run's first task, the one its creation set: `TimerStore.sharing`); one heartbeat by then
 * is enough, and a live consumer sends its first 5 s after the start.
 *
 * After the run's object restarts it has heard from no one yet, so it counts from its own boot:
 * a claim not heard from is looked at once more a timeout later (the mark `:unheard` on the timer
 * survives a restart), so it is declared lost at most 2 × LIVENESS_TIMEOUT_MS after its last
 * heartbeat, however often the object restarts.
 */
export const HEARTBEAT_INTERVAL_MS = 5_000;
export const LIVENESS_TIMEOUT_MS = 15_000;
/**
 * An attempt lost this many times fails (with a retryable `task.lost` error): something keeps
 * killing what runs it, and failing where the user can see it beats dispatching it forever.
 */
export const MAX_LOST_DISPATCHES = 10;

export class Liveness {
  private readonly seen = new Map<string, number>();
  /** What the write in progress forgot, to put back if it rolls back. */
  private forgotten: [string, number][] = [];

  constructor(readonly bootedAt: number) {}

  heard(claim: string, now: number): void {
    this.seen.set(claim, now);
  }

  /** The claim's last heartbeat since this object came up, if any. */
  heardAt(claim: string): number | undefined {
    return this.seen.get(claim);
  }

  /** Called inside a write: a claim that ended. Undone by `rolledBack`. */
  forget(claim: string): void {
    const at = this.seen.get(claim);
    if (at === undefined) return;
    this.forgotten.push([claim, at]);
    this.seen.delete(claim);
  }

  committed(): void {
    this.forgotten = [];
  }

  /** The write rolled back: the claims it forgot are running still. */
  rolledBack(): void {
    for (const [claim, at] of this.forgotten) if (!this.seen.has(claim)) this.seen.set(claim, at);
    this.forgotten = [];
  }
}
