/**
 * Runs rounds of work one at a time. A call made while a round is running does not start another
 * one alongside it: it asks for one more round once the current one ends, so work that arrived
 * meanwhile is picked up without running twice at once. A round returns true to go round again.
 */
export class Rounds {
  private running = false;
  private again = false;

  constructor(private readonly round: () => Promise<boolean>) {}

  async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        if (await this.round()) this.again = true;
      } while (this.again);
    } finally {
      this.running = false;
    }
  }
}
