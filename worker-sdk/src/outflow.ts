/** The most items one call carries. */
const MAX_BATCH = 100;

/**
 * Sends what a task produces as it goes (stream chunks, log lines) in order and in batches: items
 * pushed while a call is on its way go together in the next one. Each item is numbered from 0 in
 * the order pushed, so the engine can tell an item sent again (a retried call, a durable task
 * replaying) from a new one. `push` resolves once its item was sent.
 */
export class Outflow<T> {
  private queue: { item: T; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private numbered = 0;
  private sending: Promise<void> | null = null;

  constructor(private readonly send: (first: number, items: T[]) => Promise<void>) {}

  push(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.sending ??= this.loop();
    });
  }

  /** Resolves when everything pushed so far has been sent (or has failed to be). */
  async drain(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private async loop(): Promise<void> {
    // Items pushed in the same turn go in the first call.
    await Promise.resolve();
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      const first = this.numbered;
      this.numbered += batch.length;
      try {
        await this.send(first, batch.map((b) => b.item));
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    this.sending = null;
  }
}
