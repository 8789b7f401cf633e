import { describe, expect, it } from 'vitest';
import { MAX_BINDING_HEADERS, compileHeaders, headersMatch, headersProblem } from './headers-match.js';

describe('headers matching', () => {
  const cases: Array<[binding: Record<string, string>, match: 'all' | 'any' | undefined, message: Record<string, string> | undefined, expected: boolean]> = [
    [{}, 'all', {}, true],
    [{}, 'all', { x: '1' }, true],
    [{}, 'all', undefined, true],
    [{}, undefined, { x: '1' }, true],
    [{}, 'any', { x: '1' }, false],
    [{}, 'any', undefined, false],
    [{ a: '1' }, 'all', { a: '1' }, true],
    [{ a: '1' }, 'all', { a: '1', b: '2' }, true],
    [{ a: '1' }, 'all', { a: '2' }, false],
    [{ a: '1' }, 'all', {}, false],
    [{ a: '1' }, 'all', undefined, false],
    [{ a: '1', b: '2' }, 'all', { a: '1' }, false],
    [{ a: '1', b: '2' }, 'all', { a: '1', b: '2' }, true],
    [{ a: '1', b: '2' }, undefined, { a: '1' }, false],
    [{ a: '1', b: '2' }, 'any', { a: '1' }, true],
    [{ a: '1', b: '2' }, 'any', { b: '2' }, true],
    [{ a: '1', b: '2' }, 'any', { a: '2', b: '1' }, false],
    [{ a: '1', b: '2' }, 'any', undefined, false],
    [{ a: '' }, 'all', { a: '' }, true],
    [{ a: '' }, 'all', {}, false],
    [{ A: '1' }, 'all', { a: '1' }, false],
    // Names of Object.prototype members are ordinary headers.
    [{ constructor: 'x' }, 'all', {}, false],
    [{ toString: 'x' }, 'any', { toString: 'x' }, true],
  ];

  it.each(cases)('binding %j (match %s) against message %j → %s', (binding, match, message, expected) => {
    expect(headersMatch(compileHeaders(binding, match), message)).toBe(expected);
  });
});

describe('headers validation', () => {
  it('accepts string headers and both match modes', () => {
    expect(headersProblem({ a: '1' }, 'all')).toBeUndefined();
    expect(headersProblem({}, 'any')).toBeUndefined();
    expect(headersProblem(undefined, undefined)).toBeUndefined();
  });

  it.each([
    [{ a: 1 }, 'all', 'header "a" has a number value'],
    [{ a: null }, 'all', 'header "a" has a null value'],
    [['a'], 'all', 'headers must be an object'],
    ['a=1', 'all', 'headers must be an object'],
    [{ a: '1' }, 'some', 'match must be "all" or "any"'],
    [{ a: 'x'.repeat(1025) }, 'all', 'longer than 1024 bytes'],
    [{ ['n'.repeat(256)]: '1' }, 'all', 'longer than 255 bytes'],
    [Object.fromEntries(Array.from({ length: MAX_BINDING_HEADERS + 1 }, (_, i) => [`h${i}`, 'v'])), 'all', '65 headers (at most 64)'],
  ])('rejects %j / %j', (headers, match, why) => {
    expect(headersProblem(headers, match)).toContain(why);
  });
});
