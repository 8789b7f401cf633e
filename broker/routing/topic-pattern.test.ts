import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { TopicTrie, assertTopicPattern, routingKeyFits, topicPatternProblem } from './topic-pattern.js';

/** The definition, written as plainly as possible: the reference the trie must agree with. */
function referenceMatch(pattern: string, key: string): boolean {
  const words = (s: string): string[] => (s === '' ? [] : s.split('.'));
  const go = (p: string[], k: string[]): boolean => {
    if (p.length === 0) return k.length === 0;
    const [head, ...rest] = p;
    if (head === '#') return go(rest, k) || (k.length > 0 && go(p, k.slice(1)));
    if (k.length === 0) return false;
    return (head === '*' || head === k[0]) && go(rest, k.slice(1));
  };
  return go(words(pattern), words(key));
}

function trieMatches(pattern: string, key: string): boolean {
  const trie = new TopicTrie<number>();
  trie.add(pattern, 1);
  const out: number[] = [];
  trie.match(key, out);
  const walked = out.length > 0;
  // Cold and warm DFA agree with the walk.
  expect(trie.resolve(key).values.length > 0).toBe(walked);
  expect(trie.resolve(key).values.length > 0).toBe(walked);
  return walked;
}

/** Matched values by both the DFA (`resolve`) and the plain walk (`match`), which must agree. */
function matchedBoth(trie: TopicTrie<number>, key: string): number[] {
  const out: number[] = [];
  trie.match(key, out);
  const viaDfa = [...trie.resolve(key).values].sort((x, y) => x - y);
  expect(viaDfa).toEqual(out.sort((x, y) => x - y));
  return viaDfa;
}

describe('topic pattern matching', () => {
  const cases: Array<[pattern: string, key: string, matches: boolean]> = [
    ['a.b.c', 'a.b.c', true],
    ['a.b.c', 'a.b', false],
    ['a.b.c', 'a.b.c.d', false],
    ['a.b', 'a.x', false],
    ['*', 'a', true],
    ['*', 'a.b', false],
    ['*', '', false],
    ['*.*', '.', true],
    ['a.*', 'a', false],
    ['a.*', 'a.', true],
    ['a.*.c', 'a.b.c', true],
    ['a.*.c', 'a.b.b.c', false],
    ['a.*.c', 'a.c', false],
    ['#', '', true],
    ['#', 'a', true],
    ['#', 'a.b.c', true],
    ['#', '..', true],
    ['a.#', 'a', true],
    ['a.#', 'a.b', true],
    ['a.#', 'a.b.c', true],
    ['a.#', 'b.a', false],
    ['#.a', 'a', true],
    ['#.a', 'x.y.a', true],
    ['#.a', 'a.x', false],
    ['a.#.c', 'a.c', true],
    ['a.#.c', 'a.b.c', true],
    ['a.#.c', 'a.b.b.c', true],
    ['a.#.c', 'a.b.b.d', false],
    ['a.#.c', 'a.c.c', true],
    ['#.#', '', true],
    ['#.#', 'a', true],
    ['#.#', 'a.b.c', true],
    ['#.*', '', false],
    ['#.*', 'a', true],
    ['*.#', 'a.b', true],
    ['#.*.#', 'x', true],
    ['*.*.#', 'a', false],
    ['#.#.#.a', 'a', true],
    ['#.#.#.a', 'b.b.b.b.a', true],
    ['#.#.#.a', 'b.b.b.b', false],
    ['a..b', 'a..b', true],
    ['a..b', 'a.b', false],
    ['a.*.b', 'a..b', true],
    ['a.#.b', 'a...b', true],
    ['', '', true],
    ['', 'a', false],
    ['a.', 'a.', true],
    ['a.', 'a', false],
    ['.a', '.a', true],
    ['*.a', '.a', true],
    ['a', 'a*', false],
    ['a', 'a', true],
    ['x.*', 'x.*', true],
  ];

  it.each(cases)('pattern %j against key %j → %s', (pattern, key, expected) => {
    expect(trieMatches(pattern, key)).toBe(expected);
    // The table itself must agree with the definition.
    expect(referenceMatch(pattern, key)).toBe(expected);
  });

  it('agrees with the reference matcher over random patterns and keys, also after removals', () => {
    const patternWord = fc.constantFrom('a', 'b', '', '*', '#');
    const keyWord = fc.constantFrom('a', 'b', 'c', '');
    const pattern = fc.array(patternWord, { maxLength: 6 }).map((w) => w.join('.'));
    const key = fc.array(keyWord, { maxLength: 7 }).map((w) => w.join('.'));
    fc.assert(
      fc.property(
        fc.array(pattern, { minLength: 1, maxLength: 25 }),
        fc.array(key, { minLength: 1, maxLength: 10 }),
        fc.array(fc.boolean()),
        fc.constantFrom(undefined, 1, 6, 40),
        (patterns, keys, drop, stateBudget) => {
          const trie = new TopicTrie<number>(stateBudget === undefined ? {} : { stateBudget });
          patterns.forEach((p, i) => trie.add(p, i));
          const check = (present: (i: number) => boolean): void => {
            // Twice over the keys: the second pass runs on a warm DFA (or a rebuilt one, with a small budget).
            for (const k of [...keys, ...keys]) {
              const expected = patterns.flatMap((p, i) => (present(i) && referenceMatch(p, k) ? [i] : []));
              expect(matchedBoth(trie, k)).toEqual(expected);
            }
          };
          check(() => true);
          patterns.forEach((p, i) => {
            if (drop[i] === true) expect(trie.remove(p, i)).toBe(true);
          });
          expect(trie.size).toBe(patterns.length - patterns.filter((_, i) => drop[i] === true).length);
          check((i) => drop[i] !== true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('stays linear on stacked "#" patterns and long keys', () => {
    // A backtracking matcher explores ~C(words + hashes, hashes) paths here and would not finish.
    const trie = new TopicTrie<number>();
    const hashes = Array.from({ length: 30 }, () => '#').join('.');
    trie.add(`${hashes}.a`, 1);
    trie.add(`${hashes}.b`, 2);
    const key = Array.from({ length: 120 }, () => 'x').join('.');
    expect(matchedBoth(trie, `${key}.b`)).toEqual([2]);
    expect(matchedBoth(trie, `${key}.c`)).toEqual([]);
  });

  it('adds no DFA state for words no pattern names, and stays within its budget', () => {
    const trie = new TopicTrie<number>();
    trie.add('orders.*.created', 1);
    trie.add('orders.#', 2);
    for (let i = 0; i < 1000; i++) expect(trie.resolve(`orders.id-${i}.created`).values).toEqual([1, 2]);
    const warm = trie.stateCount;
    expect(warm).toBeLessThan(6);
    for (let i = 0; i < 1000; i++) trie.resolve(`orders.id-${i}.created.more`);
    expect(trie.stateCount).toBeLessThan(warm + 3);

    const small = new TopicTrie<number>({ stateBudget: 20 });
    for (let i = 0; i < 50; i++) small.add(`w${i}.#`, i);
    for (let i = 0; i < 50; i++) expect(small.resolve(`w${i}.x.y`).values).toEqual([i]);
    expect(small.stateCount).toBeLessThan(20);
  });

  it('reports a value once per pattern entry and removes one entry at a time', () => {
    const trie = new TopicTrie<string>();
    trie.add('a.*', 'q');
    trie.add('a.#', 'q');
    trie.add('a.*', 'q');
    const out: string[] = [];
    trie.match('a.b', out);
    expect(out).toEqual(['q', 'q', 'q']);
    expect(trie.remove('a.*', 'q')).toBe(true);
    expect(trie.remove('a.*', 'other')).toBe(false);
    expect(trie.remove('a.b.c', 'q')).toBe(false);
    out.length = 0;
    trie.match('a.b', out);
    expect(out).toEqual(['q', 'q']);
    expect(trie.remove('a.*', 'q')).toBe(true);
    expect(trie.remove('a.#', 'q')).toBe(true);
    expect(trie.size).toBe(0);
    out.length = 0;
    trie.match('a.b', out);
    expect(out).toEqual([]);
  });
});

describe('topic pattern validation', () => {
  it.each(['', '#', '*', 'a.b', 'a.*.#', '..', 'a..b', '*.#.*', 'é.ü'])('accepts %j', (p) => {
    expect(topicPatternProblem(p)).toBeUndefined();
  });

  it.each([
    ['a.b*', 'word 2 is "b*"'],
    ['#a', 'word 1 is "#a"'],
    ['a.**', 'word 2 is "**"'],
    ['a.##.c', 'word 2 is "##"'],
    ['x.*y.z', 'word 2 is "*y"'],
  ])('rejects %j with a reason naming the word', (p, why) => {
    expect(topicPatternProblem(p)).toContain(why);
    try {
      assertTopicPattern(p);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(KmqError);
      expect((err as KmqError).code).toBe(ErrorCode.InvalidRoutingPattern);
      expect((err as KmqError).message).toContain(`"${p}"`);
      expect((err as KmqError).message).toContain('whole words');
    }
  });

  it('limits patterns and routing keys to 255 UTF-8 bytes', () => {
    expect(topicPatternProblem('a'.repeat(255))).toBeUndefined();
    expect(topicPatternProblem('a'.repeat(256))).toContain('256 bytes');
    // 128 two-byte characters: short in UTF-16, too long in UTF-8.
    expect(topicPatternProblem('é'.repeat(128))).toContain('256 bytes');
    expect(routingKeyFits('a'.repeat(255))).toBe(true);
    expect(routingKeyFits('a'.repeat(256))).toBe(false);
    expect(routingKeyFits('é'.repeat(127))).toBe(true);
    expect(routingKeyFits('é'.repeat(128))).toBe(false);
    expect(routingKeyFits('€'.repeat(85))).toBe(true);
    expect(routingKeyFits('€'.repeat(86))).toBe(false);
  });

  it('refuses an invalid pattern in the trie', () => {
    const trie = new TopicTrie<number>();
    expect(() => trie.add('a.b#', 1)).toThrow(/whole words/);
    expect(trie.size).toBe(0);
  });
});
