import { CustomObjectsApi, Watch } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';

/** One event of a watch stream, as the API server sends it. */
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  /** The object; for ERROR a metav1.Status (`code` 410 = resourceVersion too old). */
  object: T;
}

/** The items of a list call and the resourceVersion to watch from. */
export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

/** A running watch; `abort` ends it without calling its done callback with an error worth reporting. */
export interface WatchHandle {
  abort(): void;
}

/**
 * Where an informer gets its objects: a list and a watch of one resource. The informer
 * owns the retry, relist and cache logic; a source only makes calls, so tests can fake it.
 */
export interface ListWatchSource<T> {
  /** Names the resource in logs, e.g. `/api/v1/namespaces/ns/configmaps`. */
  readonly description: string;
  list(): Promise<ListResult<T>>;
  /**
   * Watches from `resourceVersion`; `onEvent` per event, `onDone` once when the stream
   * ends (null: closed cleanly) or fails. May reject instead of calling `onDone`.
   */
  watch(resourceVersion: string, onEvent: (event: WatchEvent<T>) => void, onDone: (err: unknown) => void): Promise<WatchHandle>;
}

/** The list call of a resource, e.g. `() => core.listNamespacedConfigMap({ namespace })`. */
export type ListCall = () => Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }>;

/** Options of a ListWatchSource over client-node calls. */
export interface ApiListWatchOptions {
  /** The collection path the watch uses, e.g. `/api/v1/namespaces/ns/configmaps` or `/apis/apps/v1/statefulsets`. */
  path: string;
  /** The same collection's list call (with the same selectors). */
  list: ListCall;
  /** Stamped onto listed items, which list responses leave without. */
  apiVersion?: string;
  kind?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * How long the server keeps one watch open, s (default: random in [300, 600), as
   * client-go): a watch that ends is resumed from the last resourceVersion.
   */
  watchTimeoutSeconds?: number;
}

/**
 * A source over client-node: `list` through a typed or custom-objects API call, the watch
 * through client-node's Watch. Items are kept as the API serves them (JSON: timestamps are
 * strings) whichever call brought them, so list and watch objects compare alike.
 */
export function apiListWatch<T extends KubernetesObject>(kubeConfig: KubeConfig, options: ApiListWatchOptions): ListWatchSource<T> {
  const watcher = new Watch(kubeConfig);
  const query = (resourceVersion: string): Record<string, string | number | boolean | undefined> => ({
    resourceVersion,
    allowWatchBookmarks: true,
    labelSelector: options.labelSelector,
    fieldSelector: options.fieldSelector,
    timeoutSeconds: options.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300),
  });
  return {
    description: [options.path, options.labelSelector && `labelSelector=${options.labelSelector}`, options.fieldSelector && `fieldSelector=${options.fieldSelector}`]
      .filter(Boolean)
      .join(' '),
    async list() {
      const response = await options.list();
      const items = (response.items ?? []).map((item) => {
        const plain = JSON.parse(JSON.stringify(item)) as T;
        if (options.apiVersion && plain.apiVersion === undefined) plain.apiVersion = options.apiVersion;
        if (options.kind && plain.kind === undefined) plain.kind = options.kind;
        return plain;
      });
      return { items, resourceVersion: response.metadata?.resourceVersion ?? '' };
    },
    async watch(resourceVersion, onEvent, onDone) {
      const controller = await watcher.watch(
        options.path,
        query(resourceVersion),
        (type, object) => onEvent({ type: type as WatchEvent<T>['type'], object: object as T }),
        onDone,
      );
      return { abort: () => controller.abort() };
    },
  };
}

/** A custom resource collection: `group`/`version`/`plural`, in `namespace` or cluster-wide. */
export interface CustomResourceRef {
  group: string;
  version: string;
  plural: string;
  /** Omit for all namespaces (or a cluster-scoped resource). */
  namespace?: string;
  labelSelector?: string;
  watchTimeoutSeconds?: number;
}

/** A source for a custom resource through CustomObjectsApi list calls and the matching watch path. */
export function customObjectListWatch<T extends KubernetesObject = KubernetesObject>(
  kubeConfig: KubeConfig,
  ref: CustomResourceRef,
): ListWatchSource<T> {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const { group, version, plural, namespace, labelSelector } = ref;
  const path = namespace === undefined ? `/apis/${group}/${version}/${plural}` : `/apis/${group}/${version}/namespaces/${namespace}/${plural}`;
  const list: ListCall = () =>
    (namespace === undefined
      ? api.listClusterCustomObject({ group, version, plural, labelSelector })
      : api.listNamespacedCustomObject({ group, version, namespace, plural, labelSelector })) as ReturnType<ListCall>;
  return apiListWatch<T>(kubeConfig, { path, list, apiVersion: `${group}/${version}`, labelSelector, watchTimeoutSeconds: ref.watchTimeoutSeconds });
}
