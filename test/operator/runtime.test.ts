import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ApiextensionsV1Api, AppsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { KubernetesObject, V1ConfigMap, V1Lease, V1StatefulSet } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../operator/runtime/controller.js';
import { Informer, splitKey } from '../../operator/runtime/informer.js';
import { apiLeaseStore } from '../../operator/runtime/leader-election.js';
import type { LeaseStore } from '../../operator/runtime/leader-election.js';
import { apiListWatch, customObjectListWatch } from '../../operator/runtime/list-watch.js';
import { ownerKey } from '../../operator/runtime/controller.js';
import { Manager } from '../../operator/runtime/manager.js';
import { ControlPlane } from '../utils/control-plane.js';

// The controller runtime against a real kube-apiserver: informers, a controller that keeps
// derived objects in step, and leader election between Manager candidates on a real Lease.

let cp: ControlPlane | undefined;
let core: CoreV1Api;
const run = `${process.pid}-${Date.now().toString(36)}`;

async function eventually<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s\n${cp?.logs() ?? ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function statusOf(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

async function readConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
  try {
    return await core.readNamespacedConfigMap({ namespace, name });
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

async function createNamespace(prefix: string): Promise<string> {
  const name = `${prefix}-${run}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

function configMapInformer(namespace: string, labelSelector?: string): Informer<V1ConfigMap> {
  return new Informer(
    apiListWatch<V1ConfigMap>(cp!.kubeConfig, {
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      list: () => core.listNamespacedConfigMap({ namespace, labelSelector }),
      labelSelector,
      apiVersion: 'v1',
      kind: 'ConfigMap',
    }),
  );
}

beforeAll(async () => {
  cp = await ControlPlane.start();
  core = cp.kubeConfig.makeApiClient(CoreV1Api);
}, 120_000);

afterAll(async () => {
  await cp?.stop();
});

describe('informer against the apiserver', () => {
  it('lists and watches ConfigMaps: add, update and delete are seen and the cache follows', async () => {
    const ns = await createNamespace('inf');
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'before' }, data: { v: '0' } } });
    const informer = configMapInformer(ns);
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(`add ${o.metadata!.name}`));
    informer.on('update', (o, old) => seen.push(`update ${o.metadata!.name} ${old.data?.v}->${o.data?.v}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata!.name}`));
    informer.start();
    try {
      expect(await informer.waitForSync()).toBe(true);
      expect(informer.keys().sort()).toContain(`${ns}/before`);
      expect(informer.get(`${ns}/before`)).toMatchObject({ apiVersion: 'v1', kind: 'ConfigMap', data: { v: '0' } });

      await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'a' }, data: { v: '1' } } });
      await eventually('add of a', 10_000, () => informer.get(`${ns}/a`));
      await core.patchNamespacedConfigMap({ namespace: ns, name: 'a', body: [{ op: 'replace', path: '/data/v', value: '2' }] });
      await eventually('update of a', 10_000, () => informer.get(`${ns}/a`)?.data?.v === '2');
      await core.deleteNamespacedConfigMap({ namespace: ns, name: 'before' });
      await eventually('delete of before', 10_000, () => informer.get(`${ns}/before`) === undefined);

      expect(seen).toEqual(expect.arrayContaining(['add before', 'add a', 'update a 1->2', 'delete before']));
      expect(seen.indexOf('add a')).toBeLessThan(seen.indexOf('update a 1->2'));
      // the cache matches the server
      const listed = await core.listNamespacedConfigMap({ namespace: ns });
      const server = new Map(listed.items.map((o) => [`${ns}/${o.metadata!.name}`, o.metadata!.resourceVersion]));
      const cached = new Map(informer.list(ns).map((o) => [`${ns}/${o.metadata!.name}`, o.metadata!.resourceVersion]));
      expect(cached).toEqual(server);
    } finally {
      await informer.stop();
    }
    expect(informer.running).toBe(false);
  });

  it('watches StatefulSets and a custom resource', async () => {
    const ns = await createNamespace('inf-kinds');
    const apps = cp!.kubeConfig.makeApiClient(AppsV1Api);
    const sts = new Informer(
      apiListWatch<V1StatefulSet>(cp!.kubeConfig, {
        path: `/apis/apps/v1/namespaces/${ns}/statefulsets`,
        list: () => apps.listNamespacedStatefulSet({ namespace: ns }),
      }),
    );
    const ext = cp!.kubeConfig.makeApiClient(ApiextensionsV1Api);
    const group = 'runtime-test.kmq.dev';
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: `widgets.${group}` },
        spec: {
          group,
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } } },
            },
          ],
        },
      },
    });
    const custom = cp!.kubeConfig.makeApiClient(CustomObjectsApi);
    const createWidget = (name: string, size: number) =>
      custom.createNamespacedCustomObject({ group, version: 'v1', namespace: ns, plural: 'widgets', body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name }, spec: { size } } });
    // the CRD's endpoint is served a moment after creation
    await eventually('the Widget CRD is served', 30_000, async () => {
      try {
        await createWidget('w1', 1);
        return true;
      } catch {
        return undefined;
      }
    });
    const widgets = new Informer(customObjectListWatch<KubernetesObject & { spec?: { size?: number } }>(cp!.kubeConfig, { group, version: 'v1', plural: 'widgets', namespace: ns }));
    sts.start();
    widgets.start();
    try {
      expect(await widgets.waitForSync()).toBe(true);
      expect(await sts.waitForSync()).toBe(true);
      expect(widgets.get(`${ns}/w1`)).toMatchObject({ apiVersion: `${group}/v1`, kind: 'Widget', spec: { size: 1 } });
      await createWidget('w2', 2);
      await eventually('widget w2', 10_000, () => widgets.get(`${ns}/w2`)?.spec?.size === 2);
      await custom.deleteNamespacedCustomObject({ group, version: 'v1', namespace: ns, plural: 'widgets', name: 'w1' });
      await eventually('widget w1 gone', 10_000, () => widgets.get(`${ns}/w1`) === undefined);

      await apps.createNamespacedStatefulSet({
        namespace: ns,
        body: {
          metadata: { name: 'web' },
          spec: {
            replicas: 0,
            serviceName: 'web',
            selector: { matchLabels: { app: 'web' } },
            template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'example.invalid/c:1' }] } },
          },
        },
      });
      const seen = await eventually('statefulset web', 10_000, () => sts.get(`${ns}/web`));
      expect(seen.spec?.serviceName).toBe('web');
    } finally {
      await Promise.all([sts.stop(), widgets.stop()]);
      await ext.deleteCustomResourceDefinition({ name: `widgets.${group}` });
    }
  });
});

const SOURCE = 'runtime-test/role=source';
const DERIVED = 'runtime-test/role=derived';

/**
 * A reconciler that keeps `<name>-derived` in step with every source ConfigMap: same data
 * plus `from`, owned by the source. Drift (deleted or edited) is repaired; a deleted source
 * takes its derived object with it. It reads the source from the informer's cache.
 */
function derivedConfigMaps(sources: Informer<V1ConfigMap>, record?: (key: string) => void) {
  return async (key: string): Promise<void> => {
    record?.(key);
    const { namespace, name } = splitKey(key);
    const source = sources.get(key);
    const derivedName = `${name}-derived`;
    const current = await readConfigMap(namespace!, derivedName);
    if (!source) {
      if (current) await core.deleteNamespacedConfigMap({ namespace: namespace!, name: derivedName }).catch((err) => {
        if (statusOf(err) !== 404) throw err;
      });
      return;
    }
    const data = { ...source.data, from: name };
    const body: V1ConfigMap = {
      metadata: {
        name: derivedName,
        namespace,
        labels: { 'runtime-test/role': 'derived' },
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name, uid: source.metadata!.uid!, controller: true }],
      },
      data,
    };
    if (!current) {
      await core.createNamespacedConfigMap({ namespace: namespace!, body });
    } else if (JSON.stringify(current.data ?? {}) !== JSON.stringify(data)) {
      await core.replaceNamespacedConfigMap({ namespace: namespace!, name: derivedName, body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata!.resourceVersion } } });
    }
  };
}

describe('controller against the apiserver', () => {
  it('reconciles ConfigMaps into derived ones and repairs drift', async () => {
    const ns = await createNamespace('ctl');
    const manager = new Manager({ kubeConfig: cp!.kubeConfig, drainTimeoutMs: 5000 });
    const sourceInformer = manager.informer(
      apiListWatch<V1ConfigMap>(cp!.kubeConfig, {
        path: `/api/v1/namespaces/${ns}/configmaps`,
        list: () => core.listNamespacedConfigMap({ namespace: ns, labelSelector: SOURCE }),
        labelSelector: SOURCE,
      }),
    );
    const derivedInformer = manager.informer(
      apiListWatch<V1ConfigMap>(cp!.kubeConfig, {
        path: `/api/v1/namespaces/${ns}/configmaps`,
        list: () => core.listNamespacedConfigMap({ namespace: ns, labelSelector: DERIVED }),
        labelSelector: DERIVED,
      }),
    );
    const calls: string[] = [];
    const controller = new Controller({ name: 'derived', workers: 2, reconcile: derivedConfigMaps(sourceInformer, (k) => calls.push(k)) })
      .watch(sourceInformer)
      .watch(derivedInformer, ownerKey<V1ConfigMap>('ConfigMap', 'v1'));
    manager.add(controller);
    expect(manager.informer(apiListWatch(cp!.kubeConfig, { path: `/api/v1/namespaces/${ns}/configmaps`, labelSelector: SOURCE, list: async () => ({ items: [] }) }))).toBe(sourceInformer);
    expect(derivedInformer).not.toBe(sourceInformer);

    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'one', labels: { 'runtime-test/role': 'source' } }, data: { a: '1' } } });
    const done = manager.start();
    try {
      const derivedData = (name: string) => async () => (await readConfigMap(ns, `${name}-derived`))?.data;
      expect(await eventually('one-derived', 15_000, derivedData('one'))).toEqual({ a: '1', from: 'one' });

      await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'two', labels: { 'runtime-test/role': 'source' } }, data: { b: '2' } } });
      expect(await eventually('two-derived', 15_000, derivedData('two'))).toEqual({ b: '2', from: 'two' });

      // a change of the source reaches the derived object
      await core.patchNamespacedConfigMap({ namespace: ns, name: 'one', body: [{ op: 'replace', path: '/data/a', value: '10' }] });
      await eventually('one-derived updated', 15_000, async () => (await derivedData('one')())?.a === '10');

      // drift: the derived object is deleted by hand, and is recreated
      const before = await readConfigMap(ns, 'one-derived');
      await core.deleteNamespacedConfigMap({ namespace: ns, name: 'one-derived' });
      const recreated = await eventually('one-derived recreated', 15_000, async () => {
        const cm = await readConfigMap(ns, 'one-derived');
        return cm && cm.metadata!.uid !== before!.metadata!.uid ? cm : undefined;
      });
      expect(recreated.data).toEqual({ a: '10', from: 'one' });

      // drift: the derived object is edited by hand, and is restored
      await core.patchNamespacedConfigMap({ namespace: ns, name: 'two-derived', body: [{ op: 'replace', path: '/data/b', value: 'tampered' }] });
      await eventually('two-derived restored', 15_000, async () => (await derivedData('two')())?.b === '2');

      // the source goes, its derived object follows
      await core.deleteNamespacedConfigMap({ namespace: ns, name: 'two' });
      await eventually('two-derived deleted', 15_000, async () => (await readConfigMap(ns, 'two-derived')) === undefined);

      expect(calls.every((k) => k === `${ns}/one` || k === `${ns}/two`)).toBe(true);
      expect(manager.isLeader).toBe(true);
    } finally {
      expect(await manager.stop()).toBe('stopped');
    }
    expect(await done).toBe('stopped');
    expect(sourceInformer.running).toBe(false);
    expect(controller.queue.isShuttingDown).toBe(true);
  });
});

interface Interval {
  who: string;
  start: number;
  end?: number;
}

describe('leader election against a real Lease', () => {
  const leaseDurationMs = 3000;
  const renewDeadlineMs = 2000;
  const retryPeriodMs = 250;

  it('elects exactly one of two Managers, hands over fast on release, after the lease duration on a crash, and never overlaps', async () => {
    const ns = await createNamespace('le');
    const leaseName = 'runtime-test';
    const intervals: Interval[] = [];
    const reconciles: Array<{ who: string; at: number }> = [];
    const cut = new Set<string>();

    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'src', labels: { 'runtime-test/role': 'source' } }, data: { x: '1' } } });

    const candidate = (who: string, opts: { releaseOnStop?: boolean } = {}) => {
      const real = apiLeaseStore(cp!.kubeConfig);
      // a store that can be cut off from the apiserver, as a network partition would
      const store: LeaseStore = {
        get: (n, name) => (cut.has(who) ? Promise.reject(new Error('partitioned')) : real.get(n, name)),
        create: (n, l) => (cut.has(who) ? Promise.reject(new Error('partitioned')) : real.create(n, l)),
        replace: (n, l) => (cut.has(who) ? Promise.reject(new Error('partitioned')) : real.replace(n, l)),
      };
      const manager = new Manager({
        kubeConfig: cp!.kubeConfig,
        drainTimeoutMs: 2000,
        leaderElection: { namespace: ns, name: leaseName, identity: who, leaseDurationMs, renewDeadlineMs, retryPeriodMs, releaseOnStop: opts.releaseOnStop, store },
        onStartedLeading: () => intervals.push({ who, start: Date.now() }),
        onStoppedLeading: () => {
          const open = intervals.find((i) => i.who === who && i.end === undefined);
          if (open) open.end = Date.now();
        },
      });
      const sources = manager.informer(
        apiListWatch<V1ConfigMap>(cp!.kubeConfig, {
          path: `/api/v1/namespaces/${ns}/configmaps`,
          list: () => core.listNamespacedConfigMap({ namespace: ns, labelSelector: SOURCE }),
          labelSelector: SOURCE,
        }),
      );
      const reconcile = derivedConfigMaps(sources);
      manager.add(
        new Controller({
          name: `derived-${who}`,
          reconcile: async (key) => {
            reconciles.push({ who, at: Date.now() });
            await reconcile(key);
            // keep reconciling, so a reconcile outside the leading interval would be caught
            return { requeueAfterMs: 100 };
          },
        }).watch(sources),
      );
      const done = manager.start();
      return { who, manager, done };
    };

    const holder = async () => ((await cp!.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns, name: leaseName })) as V1Lease).spec?.holderIdentity;
    const running: Array<{ manager: Manager }> = [];
    const start = (who: string, opts: { releaseOnStop?: boolean } = {}) => {
      const c = candidate(who, opts);
      running.push(c);
      return c;
    };
    const leaderCount = () => running.filter((c) => c.manager.isLeader).length;

    try {
      const a = start('a');
      await eventually('a leads', 15_000, () => a.manager.isLeader || undefined);
      const b = start('b', { releaseOnStop: false });
      // exactly one leads, for a while, and does the work
      for (let i = 0; i < 20; i++) {
        expect(a.manager.isLeader).toBe(true);
        expect(b.manager.isLeader).toBe(false);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await holder()).toBe('a');
      await eventually('derived object from the leader', 10_000, async () => (await readConfigMap(ns, 'src-derived'))?.data?.from === 'src');

      // a stops gracefully and releases the lease: b takes over within a few retry periods
      const releasedAt = Date.now();
      expect(await a.manager.stop()).toBe('stopped');
      await eventually('b takes over after release', 10_000, () => b.manager.isLeader || undefined);
      expect(Date.now() - releasedAt).toBeLessThan(leaseDurationMs - 1000);
      expect(await holder()).toBe('b');

      // b "crashes": it stops without releasing; c takes over only once the lease has expired
      const c = start('c');
      await new Promise((r) => setTimeout(r, 500));
      expect(c.manager.isLeader).toBe(false);
      const crashedAt = Date.now();
      expect(await b.manager.stop()).toBe('stopped');
      await eventually('c takes over after the lease expired', 15_000, () => c.manager.isLeader || undefined);
      const takeover = Date.now() - crashedAt;
      expect(takeover).toBeGreaterThanOrEqual(leaseDurationMs - 2 * retryPeriodMs);
      expect(takeover).toBeLessThan(leaseDurationMs + 3000);
      expect(await holder()).toBe('c');

      // c is cut off from the apiserver: it stops leading by itself within the renew deadline,
      // and d takes over only after the lease expired
      const d = start('d');
      await new Promise((r) => setTimeout(r, 500));
      const cutAt = Date.now();
      cut.add('c');
      expect(await c.done).toBe('lost-leadership');
      expect(Date.now() - cutAt).toBeLessThan(renewDeadlineMs + 2 * retryPeriodMs + 1000);
      await eventually('d takes over from the partitioned c', 15_000, () => d.manager.isLeader || undefined);
      expect(Date.now() - cutAt).toBeGreaterThanOrEqual(leaseDurationMs - 2 * retryPeriodMs);
      expect(leaderCount()).toBe(1);
      expect(await d.manager.stop()).toBe('stopped');
    } finally {
      cut.clear();
      await Promise.all(running.map((c) => c.manager.stop()));
    }

    // never two leaders at once, and reconciles happen only inside their manager's interval
    expect(intervals.length).toBeGreaterThanOrEqual(4);
    const sorted = [...intervals].sort((x, y) => x.start - y.start);
    for (const i of sorted) expect(i.end).toBeDefined();
    for (let k = 1; k < sorted.length; k++) expect(sorted[k]!.start).toBeGreaterThanOrEqual(sorted[k - 1]!.end!);
    for (const r of reconciles) {
      expect(intervals.some((i) => i.who === r.who && i.start <= r.at && r.at <= i.end!)).toBe(true);
    }
  }, 90_000);
});

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The built runtime (dist/, as `npm test` builds it first); stale output would test old code. */
function builtRuntime(): string {
  const src = path.join(root, 'operator', 'runtime');
  const out = path.join(root, 'dist', 'operator', 'runtime');
  for (const file of fs.readdirSync(src).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
    const js = path.join(out, file.replace(/\.ts$/, '.js'));
    if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(src, file)).mtimeMs) {
      throw new Error(`${path.relative(root, js)} is missing or older than its source: run \`npm run build\``);
    }
  }
  return out;
}

/** A Manager candidate in a process of its own: prints one JSON line per event. */
const CANDIDATE = `
const [kubeconfig, ns, lease, timings, runtime, clientNode, who] = process.argv.slice(2);
const { KubeConfig, CoreV1Api } = await import(clientNode);
const { Manager } = await import(runtime + '/manager.js');
const { Controller } = await import(runtime + '/controller.js');
const { apiListWatch } = await import(runtime + '/list-watch.js');
const say = (event, extra = {}) => process.stdout.write(JSON.stringify({ event, who, at: Date.now(), ...extra }) + '\\n');
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(CoreV1Api);
const manager = new Manager({
  kubeConfig: kc,
  handleSignals: true,
  drainTimeoutMs: 2000,
  leaderElection: { namespace: ns, name: lease, identity: who, ...JSON.parse(timings) },
  onStartedLeading: () => say('started'),
  onStoppedLeading: () => say('stopped'),
});
const informer = manager.informer(apiListWatch(kc, { path: '/api/v1/namespaces/' + ns + '/configmaps', list: () => core.listNamespacedConfigMap({ namespace: ns }) }));
manager.add(new Controller({ name: 'probe', reconcile: async (key) => { say('reconcile', { key }); return { requeueAfterMs: 100 }; } }).watch(informer));
say('ready');
const why = await manager.start();
say('exit', { why });
`;

interface CandidateEvent {
  event: string;
  who: string;
  at: number;
  why?: string;
}

class CandidateProcess {
  readonly events: CandidateEvent[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(script: string, args: string[], readonly who: string) {
    this.child = spawn(process.execPath, [script, ...args, who], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as CandidateEvent);
      } catch {
        // not ours
      }
    });
    this.child.stderr!.on('data', () => undefined);
  }

  has(event: string): CandidateEvent | undefined {
    return this.events.find((e) => e.event === event);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
  }
}

describe('leader election between operator processes', () => {
  const timings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 250 };

  it('SIGTERM stops the leader gracefully and releases the lease; after SIGKILL the next one waits for expiry', async () => {
    const runtime = builtRuntime();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-runtime-'));
    const script = path.join(dir, 'candidate.mjs');
    fs.writeFileSync(script, CANDIDATE);
    const ns = await createNamespace('le-proc');
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'work' }, data: {} } });
    const clientNode = pathToFileURL(path.join(root, 'node_modules', '@kubernetes', 'client-node', 'dist', 'index.js')).href;
    const args = [cp!.kubeconfigPath, ns, 'runtime-proc', JSON.stringify(timings), runtime, clientNode];
    const procs: CandidateProcess[] = [];
    const start = (who: string) => {
      const p = new CandidateProcess(script, args, who);
      procs.push(p);
      return p;
    };
    try {
      const a = start('a');
      await eventually('a leads', 20_000, () => a.has('started'));
      await eventually('a reconciles', 10_000, () => a.has('reconcile'));
      const b = start('b');
      await eventually('b is up', 20_000, () => b.has('ready'));
      await new Promise((r) => setTimeout(r, 500));
      expect(b.has('started')).toBeUndefined();

      const termAt = Date.now();
      a.signal('SIGTERM');
      // exit code 0 once the script ends: the stopped manager left no timer or socket open
      expect(await a.exited).toBe(0);
      expect(a.has('stopped')).toBeDefined();
      expect(a.has('exit')?.why).toBe('stopped');
      const bStarted = await eventually('b takes over after a released the lease', 10_000, () => b.has('started'));
      expect(bStarted.at - termAt).toBeLessThan(timings.leaseDurationMs - 1000);

      const c = start('c');
      await eventually('c is up', 20_000, () => c.has('ready'));
      await new Promise((r) => setTimeout(r, 500));
      const killAt = Date.now();
      b.signal('SIGKILL');
      await b.exited;
      const cStarted = await eventually('c takes over after the lease expired', 15_000, () => c.has('started'));
      expect(cStarted.at - killAt).toBeGreaterThanOrEqual(timings.leaseDurationMs - 2 * timings.retryPeriodMs);
      expect(cStarted.at - killAt).toBeLessThan(timings.leaseDurationMs + 3000);

      // intervals: a [started, stopped], b [started, killed], c [started, ...]: never overlapping,
      // and every reconcile lies inside its process's interval
      const aStart = a.has('started')!.at;
      const aEnd = a.has('stopped')!.at;
      expect(aEnd).toBeLessThanOrEqual(bStarted.at);
      expect(killAt).toBeLessThanOrEqual(cStarted.at);
      const within = (p: CandidateProcess, from: number, to: number) =>
        p.events.filter((e) => e.event === 'reconcile').every((e) => e.at >= from && e.at <= to);
      expect(within(a, aStart, aEnd)).toBe(true);
      expect(within(b, bStarted.at, killAt)).toBe(true);
      expect(b.events.some((e) => e.event === 'reconcile')).toBe(true);
    } finally {
      for (const p of procs) p.signal('SIGKILL');
      await Promise.all(procs.map((p) => p.exited));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
