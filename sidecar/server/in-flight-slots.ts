/**
 * A stream's max in flight shared by the readers that feed it (an ordered
 * subscription's topic and its retry topic): take() before a delivery, release()
 * once it is done or waits; a release wakes every listener so any reader may use
 * the free slot.
 */
export class InFlightSlots {
  private used = 0;
  private readonly listeners = new Set<() => void>();

  constructor(readonly max: number) {}

  get free(): boolean {
    return this.used < this.max;
  }

  take(): void {
    this.used++;
  }

  release(): void {
    this.used--;
    for (const l of [...this.listeners]) l();
  }

  /** Calls `listener` after each release until the returned function is called. */
  onRelease(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
