/**
 * A stream's max in flight shared by the readers that feed it (an ordered
 * subscription's topic and its retry topic): take() before a delivery, release()
 * once it is done or waits. A release wakes every listener in turn, starting with
 * a different one each time, so no reader keeps the free slots to itself.
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
    const turn = [...this.listeners];
    const first = turn[0];
    // The one woken first now goes last next time.
    if (first !== undefined && this.listeners.delete(first)) this.listeners.add(first);
    for (const l of turn) l();
  }

  /** Calls `listener` after each release until the returned function is called. */
  onRelease(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
