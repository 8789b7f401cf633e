/**
 * A stream's max in flight shared by the readers that feed it (an ordered
 * subscription's topic and its retry topic): take() before a delivery, release()
 * once it is done or waits. A release wakes every listener in turn, starting with
 * a different one each time, so no reader keeps the free slots to itself.
 */
export class InFlightSlots {
  private used = 0;
  /** Listeners in registration order; removed ones become undefined until the next registration. */
  private listeners: Array<(() => void) | undefined> = [];
  /** The listener woken first on the next release. */
  private turn = 0;

  constructor(readonly max: number) {}

  get free(): boolean {
    return this.used < this.max;
  }

  take(): void {
    this.used++;
  }

  release(): void {
    this.used--;
    // Runs once per settled delivery: no array or set is built here.
    const ls = this.listeners;
    const n = ls.length;
    if (n === 0) return;
    const first = this.turn % n;
    this.turn = first + 1;
    for (let i = 0; i < n; i++) ls[(first + i) % n]?.();
  }

  /** Calls `listener` after each release until the returned function is called. */
  onRelease(listener: () => void): () => void {
    this.listeners = [...this.listeners.filter((l) => l !== undefined), listener];
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners[i] = undefined;
    };
  }
}
