import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { EnvVar } from '../lib/env.js';
import type { BrokerAddress } from '../protocol/connection.js';
import { intSetting, invalidSetting, numberSetting, stringSetting } from './settings.js';

/** Port a broker address without one uses. */
export const DEFAULT_BROKER_PORT = 9092;
/** Environment variable with the default broker list, comma-separated `host:port`. */
export const BROKER_ENV = EnvVar.broker;

export type { BrokerAddress } from '../protocol/connection.js';
export { formatBrokerAddress } from '../protocol/connection.js';

/** Parses `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 9092. */
export function parseBrokerAddress(address: string): BrokerAddress {
  const s = address.trim();
  let host = s;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) throw invalidSetting('brokers', 'unterminated IPv6 address', address);
    host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw invalidSetting('brokers', 'expected host:port', address);
      portText = rest.slice(1);
    }
  } else {
    const colon = s.lastIndexOf(':');
    if (colon >= 0 && s.indexOf(':') === colon) {
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
    }
  }
  if (host === '') throw invalidSetting('brokers', 'empty host', address);
  if (portText === undefined) return { host, port: DEFAULT_BROKER_PORT };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw invalidSetting('brokers', 'port must be in [1, 65535]', address);
  return { host, port };
}


/** Brokers from KMQ_BROKER, else 127.0.0.1:9092. */
export function defaultBrokers(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env[BROKER_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== '') return fromEnv.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return [`127.0.0.1:${DEFAULT_BROKER_PORT}`];
}

/** How requests that fail with a retriable error are retried. */
export interface RetrySettings {
  /** Retries after the first attempt. Default 5. */
  retries?: number;
  /** First delay, ms. Default 100. */
  initialMs?: number;
  /** Largest delay, ms. Default 5000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
  /** Random spread, fraction of the delay. Default 0.2. */
  jitter?: number;
}

/** Options of a KmqClient. */
export interface ClientOptions {
  /** Bootstrap brokers, `host:port`. Default: KMQ_BROKER, else 127.0.0.1:9092. */
  brokers?: string[];
  /** Sent to the broker (group membership, logs). Default 'kmq-client'. */
  clientId?: string;
  /** Deadline of every request, ms. Default 30000. */
  requestTimeoutMs?: number;
  /** Deadline of a TCP connect, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Largest response frame accepted, bytes. Default 64 MiB. */
  maxFrameBytes?: number;
  retry?: RetrySettings;
  /** Default: a silent logger. */
  logger?: Logger;
}

export interface CompiledRetrySettings {
  retries: number;
  initialMs: number;
  maxMs: number;
  multiplier: number;
  jitter: number;
}

export interface CompiledClientOptions {
  brokers: BrokerAddress[];
  clientId: string;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  maxFrameBytes: number;
  retry: CompiledRetrySettings;
  logger: Logger;
}

export function compileRetrySettings(prefix: string, r: RetrySettings | undefined): CompiledRetrySettings {
  if (r !== undefined && (typeof r !== 'object' || r === null)) throw invalidSetting(prefix, 'must be an object', r);
  const initialMs = intSetting(`${prefix}.initialMs`, r?.initialMs, 100, 0);
  const maxMs = intSetting(`${prefix}.maxMs`, r?.maxMs, 5_000, 0);
  if (maxMs < initialMs) throw invalidSetting(`${prefix}.maxMs`, `must be >= ${prefix}.initialMs (${initialMs})`, maxMs);
  return {
    retries: intSetting(`${prefix}.retries`, r?.retries, 5, 0, 1_000_000),
    initialMs,
    maxMs,
    multiplier: numberSetting(`${prefix}.multiplier`, r?.multiplier, 2, 1, 100),
    jitter: numberSetting(`${prefix}.jitter`, r?.jitter, 0.2, 0, 1),
  };
}

/** Validates once and fills every default; throws KmqError(InvalidConfig) naming the bad setting. */
export function compileClientOptions(options: ClientOptions = {}, env: NodeJS.ProcessEnv = process.env): CompiledClientOptions {
  const brokerList = options.brokers ?? defaultBrokers(env);
  if (!Array.isArray(brokerList) || brokerList.length === 0) throw invalidSetting('brokers', 'must be a non-empty list of host:port', brokerList);
  const brokers = brokerList.map((b) => {
    if (typeof b !== 'string') throw invalidSetting('brokers', 'entries must be host:port strings', b);
    return parseBrokerAddress(b);
  });
  return {
    brokers,
    clientId: stringSetting('clientId', options.clientId, 'kmq-client'),
    requestTimeoutMs: intSetting('requestTimeoutMs', options.requestTimeoutMs, 30_000, 1),
    connectTimeoutMs: intSetting('connectTimeoutMs', options.connectTimeoutMs, 10_000, 1),
    maxFrameBytes: intSetting('maxFrameBytes', options.maxFrameBytes, 64 * 1024 * 1024, 1024),
    retry: compileRetrySettings('retry', options.retry),
    logger: options.logger ?? silentLogger(),
  };
}
