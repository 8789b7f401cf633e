import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { APP_PORT_ANNOTATION, INJECT_LABEL, SUBSCRIPTIONS_ANNOTATION } from '../api/v1alpha1/annotations.js';
import { INJECTED_ANNOTATION, SIDECAR_CONTAINER_NAME, decideInjection, injectionPatch, parseInjectionAnnotations, sidecarContainer } from './inject.js';
import type { JsonPatchOp, SidecarContext } from './inject.js';

function pod(labels: Record<string, string> = { [INJECT_LABEL]: 'true' }, annotations?: Record<string, string>, extra: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    metadata: { name: 'app', labels, ...(annotations === undefined ? {} : { annotations }) },
    spec: { containers: [{ name: 'app', image: 'app:1' }], ...extra },
  };
}

const ctx: SidecarContext = {
  namespace: 'shop',
  brokerAddress: 'main-client.shop.svc:9092',
  image: 'ghcr.io/kmq/kmq:0.1.0',
  subscriptions: [{ name: 'shop.billing', topic: 'shop.orders' }],
  appPort: 8080,
  version: '0.1.0',
};

/** Applies the add operations of `ops` to a copy of `doc` (enough of RFC 6902 for these patches). */
function apply(doc: V1Pod, ops: JsonPatchOp[]): V1Pod {
  const out = structuredClone(doc) as unknown as Record<string, unknown>;
  for (const op of ops) {
    expect(op.op).toBe('add');
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let at: unknown = out;
    for (const p of parts) at = (at as Record<string, unknown>)[p];
    if (Array.isArray(at)) at.splice(Number(last), 0, op.value);
    else (at as Record<string, unknown>)[last] = op.value;
  }
  return out as unknown as V1Pod;
}

describe('parseInjectionAnnotations', () => {
  it('reads comma-separated names and the app port', () => {
    expect(parseInjectionAnnotations({ [SUBSCRIPTIONS_ANNOTATION]: ' billing, emails ,audit.v2', [APP_PORT_ANNOTATION]: '8080' })).toEqual({ subscriptions: ['billing', 'emails', 'audit.v2'], appPort: 8080 });
  });

  it('takes no annotations, or an empty list, as a publish-only pod', () => {
    expect(parseInjectionAnnotations(undefined)).toEqual({ subscriptions: [] });
    expect(parseInjectionAnnotations({ [SUBSCRIPTIONS_ANNOTATION]: '  ' })).toEqual({ subscriptions: [] });
  });

  it.each([
    [{ [SUBSCRIPTIONS_ANNOTATION]: 'billing,,emails' }, /empty name/],
    [{ [SUBSCRIPTIONS_ANNOTATION]: 'Billing' }, /"Billing" is not a Subscription name/],
    [{ [SUBSCRIPTIONS_ANNOTATION]: 'bill_ing' }, /not a Subscription name/],
    [{ [SUBSCRIPTIONS_ANNOTATION]: 'billing,billing' }, /names "billing" twice/],
    [{ [SUBSCRIPTIONS_ANNOTATION]: Array.from({ length: 101 }, (_, i) => `s${i}`).join(',') }, /more than 100/],
    [{ [APP_PORT_ANNOTATION]: 'http' }, /kmq.dev\/app-port must be a port number/],
    [{ [APP_PORT_ANNOTATION]: '0' }, /must be a port number/],
    [{ [APP_PORT_ANNOTATION]: '65536' }, /must be a port number/],
    [{ [APP_PORT_ANNOTATION]: '80.5' }, /must be a port number/],
    [{ [APP_PORT_ANNOTATION]: '50051' }, /a port of the sidecar/],
    [{ [APP_PORT_ANNOTATION]: '50052' }, /a port of the sidecar/],
  ])('refuses %j', (annotations, message) => {
    expect(() => parseInjectionAnnotations(annotations)).toThrow(message);
  });
});

describe('decideInjection', () => {
  it('injects a labelled pod', () => {
    expect(decideInjection(pod(undefined, { [SUBSCRIPTIONS_ANNOTATION]: 'billing' }), 'shop')).toEqual({ action: 'inject', request: { subscriptions: ['billing'] } });
  });

  it('skips a pod without the label, or with another value', () => {
    expect(decideInjection(pod({}), 'shop').action).toBe('skip');
    expect(decideInjection(pod({ [INJECT_LABEL]: 'false' }), 'shop').action).toBe('skip');
    expect(decideInjection({ spec: { containers: [] } }, 'shop').action).toBe('skip');
  });

  it('never touches kube-system, the other kube-* namespaces or the protected ones, whatever the label', () => {
    for (const ns of ['kube-system', 'kube-public', 'kube-node-lease']) expect(decideInjection(pod(), ns)).toEqual({ action: 'skip', reason: `namespace ${ns} is never injected` });
    expect(decideInjection(pod(), 'kmq-system', ['kmq-system']).action).toBe('skip');
    expect(decideInjection(pod(), 'shop', ['kmq-system']).action).toBe('inject');
  });

  it('skips a pod that already has the sidecar (as an init container or a container)', () => {
    expect(decideInjection(pod(undefined, undefined, { initContainers: [{ name: SIDECAR_CONTAINER_NAME }] }), 'shop').action).toBe('skip');
    expect(decideInjection(pod(undefined, undefined, { containers: [{ name: 'app' }, { name: SIDECAR_CONTAINER_NAME }] }), 'shop').action).toBe('skip');
  });

  it('refuses malformed annotations with a message naming the annotation', () => {
    const d = decideInjection(pod(undefined, { [APP_PORT_ANNOTATION]: 'eighty' }), 'shop');
    expect(d).toEqual({ action: 'deny', message: expect.stringContaining('kmq.dev/app-port') as unknown });
  });

  it('refuses a hostNetwork pod', () => {
    expect(decideInjection(pod(undefined, undefined, { hostNetwork: true }), 'shop')).toEqual({ action: 'deny', message: expect.stringContaining('hostNetwork') as unknown });
    expect(decideInjection(pod(undefined, undefined, { hostNetwork: false }), 'shop').action).toBe('inject');
  });

  it('refuses a pod whose containers use the sidecar ports', () => {
    const d = decideInjection(pod(undefined, undefined, { containers: [{ name: 'app', ports: [{ containerPort: 50051 }] }] }), 'shop');
    expect(d).toEqual({ action: 'deny', message: expect.stringContaining('container app uses port 50051') as unknown });
  });
});

describe('injectionPatch', () => {
  it('adds the sidecar as the first init container with restartPolicy Always, and the injected annotation', () => {
    const p = pod(undefined, { other: 'x' }, { initContainers: [{ name: 'migrate', image: 'app:1' }] });
    const out = apply(p, injectionPatch(p, ctx));
    expect(out.spec!.initContainers!.map((c) => c.name)).toEqual([SIDECAR_CONTAINER_NAME, 'migrate']);
    expect(out.spec!.initContainers![0]!.restartPolicy).toBe('Always');
    expect(out.spec!.containers).toEqual(p.spec!.containers);
    expect(out.metadata!.annotations).toEqual({ other: 'x', [INJECTED_ANNOTATION]: '0.1.0' });
  });

  it('creates initContainers and annotations when the pod has none', () => {
    const p = pod();
    const ops = injectionPatch(p, ctx);
    expect(ops.map((o) => o.path)).toEqual(['/spec/initContainers', '/metadata/annotations']);
    const out = apply(p, ops);
    expect(out.spec!.initContainers!.map((c) => c.name)).toEqual([SIDECAR_CONTAINER_NAME]);
    expect(out.metadata!.annotations).toEqual({ [INJECTED_ANNOTATION]: '0.1.0' });
  });

  it('escapes the annotation key as a JSON pointer', () => {
    const ops = injectionPatch(pod(undefined, {}), ctx);
    expect(ops[1]!.path).toBe('/metadata/annotations/kmq.dev~1injected');
  });

  it('is idempotent: the patched pod gets no second patch', () => {
    const p = pod(undefined, {});
    const once = apply(p, injectionPatch(p, ctx));
    expect(injectionPatch(once, ctx)).toEqual([]);
    expect(decideInjection(once, 'shop').action).toBe('skip');
  });
});

describe('sidecarContainer', () => {
  const c = sidecarContainer(ctx);

  it('is configured through KMQ_* variables', () => {
    const env = Object.fromEntries(c.env!.map((e) => [e.name, e.value]));
    expect(env).toEqual({
      KMQ_BROKER: 'main-client.shop.svc:9092',
      KMQ_SIDECAR_NAMESPACE: 'shop',
      KMQ_SIDECAR_HOST: '127.0.0.1',
      KMQ_SIDECAR_PORT: '50051',
      KMQ_SIDECAR_APP_PORT: '8080',
      KMQ_SIDECAR_SUBSCRIPTIONS: JSON.stringify([{ name: 'shop.billing', topic: 'shop.orders' }]),
    });
    expect(c.image).toBe('ghcr.io/kmq/kmq:0.1.0');
    expect(c.args).toEqual(['sidecar']);
    const bare = sidecarContainer({ ...ctx, subscriptions: [], appPort: undefined });
    expect(bare.env!.map((e) => e.name)).toEqual(['KMQ_BROKER', 'KMQ_SIDECAR_NAMESPACE', 'KMQ_SIDECAR_HOST', 'KMQ_SIDECAR_PORT']);
  });

  it('meets Pod Security restricted', () => {
    expect(c.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.securityContext!.privileged).toBeUndefined();
    expect(c.ports).toBeUndefined();
  });

  it('has requests, limits and probes of /readyz', () => {
    expect(c.resources!.requests).toEqual({ cpu: '50m', memory: '64Mi' });
    expect(c.resources!.limits).toEqual({ cpu: '1', memory: '256Mi' });
    expect(sidecarContainer({ ...ctx, resources: { requests: { cpu: '10m' } } }).resources).toEqual({ requests: { cpu: '10m' } });
    for (const probe of [c.startupProbe!, c.readinessProbe!]) expect(probe.exec!.command!.join(' ')).toContain('http://127.0.0.1:50052/readyz');
  });
});
