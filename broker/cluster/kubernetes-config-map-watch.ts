import type { KubernetesObject, Watch } from '@kubernetes/client-node';
import type { KmqError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { WatchEvent } from './coordination-store.js';
import { statusOf } from './kubernetes-api-errors.js';
import { eventsBetween, stateOf } from './kubernetes-store-layout.js';
import type { StoreState } from './kubernetes-store-layout.js';

/** What a ConfigMapWatch needs from its store. */
export interface WatchDeps {
  watcher: Pick<Watch, 'watch'>;
  /** The collection path, e.g. `/api/v1/namespaces/<ns>/configmaps`. */
  path: string;
  fieldSelector: string;
  list(): Promise<{ state: StoreState | undefined; resourceVersion: string }>;
  /** The KmqError for a watch request that failed. */
  watchError(err: unknown): KmqError;
  log: Logger;
}

/**
 * One watch of the store: a Kubernetes watch of the ConfigMap, resumed from its last
 * resourceVersion when the stream ends, re-listed after 410 Gone. Each new state is diffed
 * against the known one (eventsBetween); when that cannot be done exactly, `resync`.
 */
export class ConfigMapWatch {
  private known: StoreState | undefined;
  private resourceVersion = '';
  private stream: AbortController | undefined;
  private generation = 0;
  private stopped = false;
  private relist = false;
  private failures = 0;
  private openedAt = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private timeoutSeconds = 60;

  constructor(
    private readonly deps: WatchDeps,
    private readonly prefix: string,
    private readonly onEvent: (event: WatchEvent) => void,
  ) {}

  async start(): Promise<void> {
    const listed = await this.deps.list();
    this.known = listed.state;
    this.resourceVersion = listed.resourceVersion;
    // Refused (no RBAC verb 'watch', bad credentials): the caller hears it rather than the watch retrying forever.
    const failed = await this.open();
    const status = statusOf(failed);
    if (status === 401 || status === 403) {
      this.stop();
      throw this.deps.watchError(failed);
    }
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.watchdog);
    clearTimeout(this.retry);
    this.stream?.abort();
  }

  /** Opens a stream from the known resourceVersion; returns the error if it failed before it was established. */
  private async open(): Promise<unknown> {
    const generation = ++this.generation;
    let established = false;
    let failed: unknown;
    this.timeoutSeconds = 60 + Math.floor(Math.random() * 30);
    this.openedAt = Date.now();
    this.armWatchdog(generation);
    const controller = await this.deps.watcher.watch(
      this.deps.path,
      { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, fieldSelector: this.deps.fieldSelector, timeoutSeconds: this.timeoutSeconds },
      (type: string, object: unknown) => {
        if (generation === this.generation) this.handle(generation, type, object as KubernetesObject & { code?: number });
      },
      (err: unknown) => {
        if (!established && err) failed = err;
        if (generation === this.generation) this.ended(err);
      },
    );
    established = true;
    if (generation === this.generation) this.stream = controller;
    else controller.abort();
    return failed;
  }

  private handle(generation: number, type: string, object: KubernetesObject & { code?: number; data?: Record<string, string> }): void {
    this.armWatchdog(generation);
    if (type === 'ERROR') {
      // 410 Gone: the resourceVersion is too old to resume from; anything else: start over the same way.
      this.deps.log.debug({ status: object }, 'Coordination store watch error');
      this.relist = true;
      this.generation++;
      this.stream?.abort();
      this.reconnect(this.failures++ === 0 ? 0 : this.backoffMs());
      return;
    }
    this.failures = 0;
    const rv = object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (type === 'ADDED' || type === 'MODIFIED') this.apply(stateOf(object, this.known));
    else if (type === 'DELETED') this.apply(undefined);
  }

  private ended(err: unknown): void {
    if (this.stopped) return;
    this.generation++;
    clearTimeout(this.watchdog);
    if (statusOf(err) === 410) this.relist = true;
    const quick = err === null && Date.now() - this.openedAt > 1000;
    if (!quick) this.failures++;
    if (err) this.deps.log.debug({ err }, 'Coordination store watch ended');
    this.reconnect(quick ? 0 : this.backoffMs());
  }

  private reconnect(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      void (async () => {
        try {
          if (this.relist) {
            const listed = await this.deps.list();
            if (this.stopped) return;
            this.apply(listed.state);
            this.resourceVersion = listed.resourceVersion;
            this.relist = false;
          }
          await this.open();
        } catch (err) {
          this.deps.log.debug({ err }, 'Coordination store watch could not reconnect');
          this.failures++;
          this.reconnect(this.backoffMs());
        }
      })();
    }, delayMs);
    this.retry.unref();
  }

  private backoffMs(): number {
    return Math.min(5000, 100 * 2 ** Math.min(this.failures, 6)) * (0.5 + Math.random() / 2);
  }

  private armWatchdog(generation: number): void {
    clearTimeout(this.watchdog);
    // A stream the server should have closed by now is dead (e.g. the API server is paused).
    this.watchdog = setTimeout(() => {
      if (generation !== this.generation || this.stopped) return;
      this.stream?.abort();
      this.ended(new Error('The watch went silent'));
    }, this.timeoutSeconds * 1000 + 15_000);
    this.watchdog.unref();
  }

  private apply(next: StoreState | undefined): void {
    const prev = this.known;
    this.known = next;
    if (prev === undefined && next === undefined) return;
    const events = prev && next ? eventsBetween(prev, next) : undefined;
    if (events === undefined) return this.emit({ type: 'resync' });
    for (const e of events) if (e.key.startsWith(this.prefix)) this.emit(e);
  }

  private emit(event: WatchEvent): void {
    if (this.stopped) return;
    try {
      this.onEvent(event);
    } catch (err) {
      this.deps.log.warn({ err }, 'A coordination store watcher threw');
    }
  }
}
