import { CliError } from './output.js';

export function intArg(flag: string, value: string, min = Number.MIN_SAFE_INTEGER): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new CliError(`${flag} must be an integer${min > Number.MIN_SAFE_INTEGER ? ` >= ${min}` : ''}, got "${value}"`);
  return n;
}

/** Checks --key / --key-separator and returns a function splitting a stdin line into key and value. */
export function lineSplitter(key: string | undefined, separator: string | undefined): (line: string) => { key: string | undefined; value: string } {
  if (key !== undefined && separator !== undefined) throw new CliError('use --key or --key-separator, not both');
  if (separator === '') throw new CliError('--key-separator must not be empty');
  return (line) => {
    if (separator !== undefined) {
      const at = line.indexOf(separator);
      if (at >= 0) return { key: line.slice(0, at), value: line.slice(at + separator.length) };
    }
    return { key, value: line };
  };
}
