import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** pino level; default from KMQ_LOG_LEVEL, else 'info'. */
  level?: string;
  /** Component name, added to every line. */
  component?: string;
  /** Where lines go; default stdout. Tests pass a stream to read them. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.KMQ_LOG_LEVEL ?? 'info';
  const base = options.component === undefined ? {} : { component: options.component };
  const dest = options.destination ?? pino.destination({ fd: 1, sync: false });
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** A logger that drops everything, for tests and library use without output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
