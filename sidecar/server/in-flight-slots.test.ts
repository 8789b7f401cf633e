import { describe, expect, it } from 'vitest';
import { InFlightSlots } from './in-flight-slots.js';

describe('InFlightSlots', () => {
  it('counts slots and wakes listeners in turn, a different one first each release', () => {
    const slots = new InFlightSlots(1);
    const woken: string[] = [];
    // Each listener takes the slot when it is free, as a reader's pump does.
    const reader = (name: string) => () => {
      woken.push(name);
      if (slots.free) slots.take();
    };
    const stopA = slots.onRelease(reader('a'));
    slots.onRelease(reader('b'));
    slots.take();
    expect(slots.free).toBe(false);
    const takers: string[] = [];
    for (let i = 0; i < 4; i++) {
      woken.length = 0;
      slots.release();
      expect(slots.free).toBe(false);
      takers.push(woken[0]!);
      expect(woken.sort()).toEqual(['a', 'b']);
    }
    expect(takers).toEqual(['a', 'b', 'a', 'b']);
    stopA();
    woken.length = 0;
    slots.release();
    expect(woken).toEqual(['b']);
  });
});
