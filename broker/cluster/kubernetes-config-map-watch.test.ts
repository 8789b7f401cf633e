import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import { until } from './coordination-store.contract.js';
import type { WatchEvent } from './coordination-store.js';
import { ConfigMapWatch } from './kubernetes-config-map-watch.js';
import type { WatchDeps } from './kubernetes-config-map-watch.js';
import { PREVIOUS_REVISION_ANNOTATION, REVISION_ANNOTATION, dataKeyOf, encodeEntry, stateOf } from './kubernetes-store-layout.js';
import type { StoredEntry } from './kubernetes-store-layout.js';

/** The ConfigMap object after a write that took the counter from `previous` to `revision`. */
function object(rv: number, previous: number, revision: number, entries: StoredEntry[]) {
  const data: Record<string, string> = {};
  for (const e of entries) data[dataKeyOf(e.key)] = encodeEntry(e);
  return {
    metadata: { name: 'cm', resourceVersion: String(rv), annotations: { [REVISION_ANNOTATION]: String(revision), [PREVIOUS_REVISION_ANNOTATION]: String(previous) } },
    data,
  };
}

interface Stream {
  query: Record<string, unknown>;
  send: (type: string, object: unknown) => void;
  done: (err: unknown) => void;
  aborted: boolean;
}

type ConfigMapObject = ReturnType<typeof object>;

interface FakeServer {
  /** What the next list returns. */
  listed: ConfigMapObject;
  streams: Stream[];
  readonly lists: number;
  deps: WatchDeps;
}

/** A fake API server: a list result to hand out, and the watch streams opened. */
function fakeServer(listed: ConfigMapObject): FakeServer {
  const streams: Stream[] = [];
  let lists = 0;
  const server: FakeServer = {
    listed,
    streams,
    get lists() {
      return lists;
    },
    deps: {
      path: '/api/v1/namespaces/ns/configmaps',
      fieldSelector: 'metadata.name=cm',
      log: silentLogger(),
      watchError: (err) => new KmqError(ErrorCode.InvalidConfig, `watch refused: ${String(err)}`),
      list: (): ReturnType<WatchDeps['list']> => {
        lists++;
        return Promise.resolve({ state: stateOf(server.listed), resourceVersion: server.listed.metadata.resourceVersion });
      },
      watcher: {
        watch: (_path: string, query: Record<string, unknown>, send: Stream['send'], done: Stream['done']) => {
          const controller = new AbortController();
          const stream: Stream = { query, send, done, aborted: false };
          controller.signal.addEventListener('abort', () => (stream.aborted = true));
          streams.push(stream);
          return Promise.resolve(controller);
        },
      },
    },
  };
  return server;
}

const a1: StoredEntry = { key: 'w/a', value: '1', version: 101 };
const b2: StoredEntry = { key: 'w/b', value: '2', version: 102 };
const x3: StoredEntry = { key: 'x', value: '3', version: 103 };

describe('ConfigMapWatch', () => {
  const watches: ConfigMapWatch[] = [];
  afterEach(() => {
    for (const w of watches.splice(0)) w.stop();
  });
  const start = async (server: FakeServer, events: WatchEvent[]): Promise<ConfigMapWatch> => {
    const w = new ConfigMapWatch(server.deps, 'w/', (e) => events.push(e));
    watches.push(w);
    await w.start();
    return w;
  };

  it('watches from the listed resourceVersion and turns each write into the events of its prefix', async () => {
    const server = fakeServer(object(10, 100, 101, [a1]));
    const events: WatchEvent[] = [];
    await start(server, events);
    expect(server.streams[0]!.query).toMatchObject({ resourceVersion: '10', fieldSelector: 'metadata.name=cm', allowWatchBookmarks: true });
    server.streams[0]!.send('MODIFIED', object(11, 101, 102, [a1, b2]));
    server.streams[0]!.send('MODIFIED', object(12, 102, 103, [a1, b2, x3]));
    server.streams[0]!.send('MODIFIED', object(13, 103, 105, [x3]));
    expect(events).toEqual([
      { type: 'put', key: 'w/b', value: '2', version: 102 },
      { type: 'delete', key: 'w/a', version: 104 },
      { type: 'delete', key: 'w/b', version: 105 },
    ]);
  });

  it('resumes from the last resourceVersion seen (bookmarks included) when the stream ends', async () => {
    const server = fakeServer(object(10, 100, 101, [a1]));
    const events: WatchEvent[] = [];
    await start(server, events);
    server.streams[0]!.send('MODIFIED', object(11, 101, 102, [a1, b2]));
    server.streams[0]!.send('BOOKMARK', { metadata: { resourceVersion: '15' } });
    server.streams[0]!.done(new Error('connection reset'));
    await until('a new stream', 5000, () => server.streams.length === 2);
    expect(server.streams[1]!.query).toMatchObject({ resourceVersion: '15' });
    expect(server.lists).toBe(1);
    server.streams[1]!.send('MODIFIED', object(16, 102, 103, [a1, { ...b2, value: 'b', version: 103 }]));
    expect(events).toEqual([
      { type: 'put', key: 'w/b', value: '2', version: 102 },
      { type: 'put', key: 'w/b', value: 'b', version: 103 },
    ]);
  });

  it('after 410 Gone re-lists: the events of exactly one write missed, else resync', async () => {
    const server = fakeServer(object(10, 100, 101, [a1]));
    const events: WatchEvent[] = [];
    await start(server, events);
    server.listed = object(20, 101, 102, [a1, b2]);
    server.streams[0]!.send('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    await until('a new stream', 5000, () => server.streams.length === 2);
    expect(server.streams[0]!.aborted).toBe(true);
    expect(server.streams[1]!.query).toMatchObject({ resourceVersion: '20' });
    expect(events).toEqual([{ type: 'put', key: 'w/b', value: '2', version: 102 }]);

    server.listed = object(30, 103, 104, [b2]);
    server.streams[1]!.send('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    await until('a third stream', 5000, () => server.streams.length === 3);
    expect(events.slice(1)).toEqual([{ type: 'resync' }]);
    // From the re-listed state on, writes are diffed again.
    server.streams[2]!.send('MODIFIED', object(31, 104, 105, []));
    expect(events.slice(2)).toEqual([{ type: 'delete', key: 'w/b', version: 105 }]);
  });

  it('reports resync when the ConfigMap is deleted, and stops delivering once stopped', async () => {
    const server = fakeServer(object(10, 100, 101, [a1]));
    const events: WatchEvent[] = [];
    const w = await start(server, events);
    server.streams[0]!.send('DELETED', object(11, 100, 101, [a1]));
    expect(events).toEqual([{ type: 'resync' }]);
    w.stop();
    expect(server.streams[0]!.aborted).toBe(true);
    server.streams[0]!.send('MODIFIED', object(12, 101, 102, [a1, b2]));
    expect(events).toHaveLength(1);
  });

  it('fails start when the watch request is refused outright, and does not retry', async () => {
    const server = fakeServer(object(10, 100, 101, [a1]));
    const refuse = server.deps.watcher.watch;
    server.deps.watcher = {
      watch: async (path, query, send, done) => {
        const controller = await refuse(path, query, send, done);
        done(Object.assign(new Error('Forbidden'), { statusCode: 403 }));
        return controller;
      },
    };
    const w = new ConfigMapWatch(server.deps, 'w/', () => undefined);
    await expect(w.start()).rejects.toMatchObject({ code: ErrorCode.InvalidConfig });
    await new Promise((r) => setTimeout(r, 300));
    expect(server.streams).toHaveLength(1);
  });
});
