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
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, options.destination ?? stdoutDestination());
}

let stdoutGuarded = false;

/**
 * process.stdout, with write errors ignored: when whoever reads our output goes away
 * (EPIPE), log lines are dropped and the process carries on and can still shut down.
 * (A sonic-boom destination retries such a write forever in its exit-time flush.)
 */
function stdoutDestination(): NodeJS.WritableStream {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', () => undefined);
  }
  return process.stdout;
}

/** A logger that drops everything, for tests and library use without output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
