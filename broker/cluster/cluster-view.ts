import { EventEmitter } from 'node:events';
import type { BackoffOptions } from '../../lib/backoff.js';
import { silentLogger } from '../../lib/logger.js';
import type { Logger } from '../../lib/logger.js';
import { BrokerRegistry, DEFAULT_RETRY_BACKOFF } from './broker-registry.js';
import { CONTROLLER_KEY, TOPICS_PREFIX } from './cluster-metadata.js';
import type { BrokerRegistration, ClusterTopic, ControllerRecord, PartitionState } from './cluster-metadata.js';
import type { CoordinationStore } from './coordination-store.js';
import { decodeClusterTopic, decodeControllerRecord } from './metadata-codec.js';
import { PrefixInformer } from './prefix-informer.js';
import type { KeyChange } from './prefix-informer.js';

/** Options of ClusterView. */
export interface ClusterViewOptions {
  store: CoordinationStore;
  /** Live brokers come from this registry (started by the view if needed); without one the view watches `brokers/` itself. */
  registry?: BrokerRegistry;
  /** Delays between retries of failed lists and watches (default 200 ms doubling to 2 s, ±20 %). */
  retryBackoff?: BackoffOptions;
  logger?: Logger;
}

/** A topic's cluster state and the store version it was read at (the version a compare-and-swap expects). */
export interface VersionedTopic {
  value: ClusterTopic;
  version: number;
}

/** What a ClusterView reports. */
export interface ClusterViewEvents {
  /** A topic was created, changed or deleted (`topic` undefined, `version` 0). */
  topicChanged: [name: string, topic: ClusterTopic | undefined, version: number];
  /** The set of live brokers changed. */
  brokersChanged: [live: ReadonlyMap<number, BrokerRegistration>];
  /** The controller record changed (undefined: no controller). */
  controllerChanged: [controller: ControllerRecord | undefined];
}

/**
 * Every broker's read model of the coordination store: live brokers, the
 * controller record, and every topic's cluster state with its version. Kept
 * current by watches that list first and re-list on resync. A value that does
 * not decode is logged and ignored, and the last good value of its key stays;
 * the view never fails because of what another writer stored.
 */
export class ClusterView extends EventEmitter<ClusterViewEvents> {
  private readonly log: Logger;
  private readonly registry: BrokerRegistry;
  private readonly ownRegistry: boolean;
  private readonly topicInformer: PrefixInformer;
  private readonly controllerInformer: PrefixInformer;
  private readonly topicStates = new Map<string, VersionedTopic>();
  private controllerRecord: ControllerRecord | undefined;
  private started: Promise<void> | undefined;
  private readonly forwardBrokers = (live: ReadonlyMap<number, BrokerRegistration>): void => void this.emit('brokersChanged', live);

  constructor(options: ClusterViewOptions) {
    super();
    this.log = (options.logger ?? silentLogger()).child({ component: 'cluster-view' });
    const backoff = options.retryBackoff ?? DEFAULT_RETRY_BACKOFF;
    this.ownRegistry = options.registry === undefined;
    this.registry = options.registry ?? new BrokerRegistry({ store: options.store, retryBackoff: backoff, logger: options.logger });
    this.topicInformer = new PrefixInformer({
      store: options.store,
      prefix: TOPICS_PREFIX,
      backoff,
      onChange: (changes) => this.onTopicChanges(changes),
      onError: (err) => this.log.warn({ err }, 'Watching topics failed, retrying'),
    });
    this.controllerInformer = new PrefixInformer({
      store: options.store,
      prefix: CONTROLLER_KEY,
      filter: (key) => key === CONTROLLER_KEY,
      backoff,
      onChange: (changes) => this.onControllerChanges(changes),
      onError: (err) => this.log.warn({ err }, 'Watching the controller record failed, retrying'),
    });
  }

  /** Starts watching; resolves once brokers, topics and the controller record have been listed. Idempotent. */
  start(): Promise<void> {
    if (this.started === undefined) {
      this.registry.on('brokersChanged', this.forwardBrokers);
      this.started = Promise.all([this.registry.start(), this.topicInformer.start(), this.controllerInformer.start()]).then(() => undefined);
    }
    return this.started;
  }

  async stop(): Promise<void> {
    this.registry.off('brokersChanged', this.forwardBrokers);
    await Promise.all([this.topicInformer.stop(), this.controllerInformer.stop(), this.ownRegistry ? this.registry.deregister() : undefined]);
  }

  /** The brokers registered now, by id. */
  live(): Map<number, BrokerRegistration> {
    return this.registry.live();
  }

  /** The elected controller, if any. */
  controller(): ControllerRecord | undefined {
    return this.controllerRecord;
  }

  topic(name: string): VersionedTopic | undefined {
    return this.topicStates.get(name);
  }

  /** Every topic by name. */
  topics(): Map<string, VersionedTopic> {
    return new Map(this.topicStates);
  }

  partitionState(topic: string, partition: number): PartitionState | undefined {
    return this.topicStates.get(topic)?.value.partitions[partition];
  }

  private onTopicChanges(changes: KeyChange[]): void {
    for (const { key, after } of changes) {
      const name = key.slice(TOPICS_PREFIX.length);
      if (after === undefined) {
        if (this.topicStates.delete(name)) this.emit('topicChanged', name, undefined, 0);
        continue;
      }
      let value: ClusterTopic;
      try {
        value = decodeClusterTopic(key, after.value);
      } catch (err) {
        this.log.error({ err, key, version: after.version }, 'Ignoring a topic state that does not decode; keeping the last good one');
        continue;
      }
      this.topicStates.set(name, { value, version: after.version });
      this.emit('topicChanged', name, value, after.version);
    }
  }

  private onControllerChanges(changes: KeyChange[]): void {
    for (const { key, after } of changes) {
      let next: ControllerRecord | undefined;
      try {
        next = after === undefined ? undefined : decodeControllerRecord(key, after.value);
      } catch (err) {
        this.log.error({ err, key }, 'Ignoring a controller record that does not decode; keeping the last good one');
        continue;
      }
      this.controllerRecord = next;
      this.emit('controllerChanged', next);
    }
  }
}
