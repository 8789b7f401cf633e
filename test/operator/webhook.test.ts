import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AdmissionregistrationV1Api, ApiextensionsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { V1MutatingWebhookConfiguration, V1Pod, V1SecurityContext } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INJECTED_ANNOTATION, SIDECAR_CONTAINER_NAME } from '../../operator/webhook/inject.js';
import { SidecarInjector } from '../../operator/webhook/injector.js';
import { MUTATE_PODS_PATH } from '../../operator/webhook/server.js';
import { compileSidecarOptions, loadSidecarOptions } from '../../sidecar/config.js';
import { ControlPlane, controlPlaneBinary, freePort } from '../utils/control-plane.js';

// The sidecar-injection webhook called by a real kube-apiserver over TLS: the
// operator's certificates in a Secret, the caBundle patched through the API, Pods
// created through the API server come back with the sidecar (or untouched), and
// a namespace enforcing Pod Security "restricted" accepts the injected Pod.

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OPERATOR_NS = `kmq-wh-op-${process.pid}`;
const APP_NS = `kmq-wh-app-${process.pid}`;
const WEBHOOK = `kmq-sidecar-injector-${process.pid}`;
const SECRET = 'kmq-webhook-tls';

let cp: ControlPlane | undefined;
let core: CoreV1Api;
let admission: AdmissionregistrationV1Api;
let injector: SidecarInjector | undefined;
let port: number;

const restricted: V1SecurityContext = {
  runAsNonRoot: true,
  runAsUser: 1000,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

function appPod(name: string, opts: { label?: boolean; annotations?: Record<string, string> } = {}): V1Pod {
  return {
    metadata: { name, labels: opts.label === false ? { app: 'web' } : { app: 'web', 'kmq.dev/inject': 'true' }, ...(opts.annotations === undefined ? {} : { annotations: opts.annotations }) },
    spec: { containers: [{ name: 'app', image: 'registry.example/app:1', securityContext: restricted }] },
  };
}

function createPod(pod: V1Pod, dryRun = false): Promise<V1Pod> {
  return core.createNamespacedPod({ namespace: APP_NS, body: pod, ...(dryRun ? { dryRun: 'All' } : {}) });
}

/** The API server's message of a refused request. */
async function refusal(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (err) {
    const body = (err as { body?: unknown }).body;
    if (typeof body !== 'string') throw err;
    return (JSON.parse(body) as { message?: string }).message ?? body;
  }
  throw new Error('The request was not refused');
}

/** Waits until the API server, which reads webhook configurations through an informer, gets the sidecar into a Pod (a dry run). */
async function untilInjected(): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const pod = await createPod(appPod('probe'), true).catch(() => undefined);
    if (pod !== undefined && sidecarsOf(pod) === 1) return;
    if (Date.now() > until) throw new Error('The API server never called the webhook');
    await new Promise((r) => setTimeout(r, 250));
  }
}

function sidecarsOf(pod: V1Pod): number {
  return [...(pod.spec?.initContainers ?? []), ...pod.spec!.containers].filter((c) => c.name === SIDECAR_CONTAINER_NAME).length;
}

function webhookConfiguration(): V1MutatingWebhookConfiguration {
  return {
    metadata: { name: WEBHOOK },
    webhooks: [
      {
        name: 'sidecar.kmq.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Fail',
        reinvocationPolicy: 'Never',
        timeoutSeconds: 10,
        clientConfig: { url: `https://127.0.0.1:${port}${MUTATE_PODS_PATH}` },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
        objectSelector: { matchLabels: { 'kmq.dev/inject': 'true' } },
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', OPERATOR_NS] }] },
      },
    ],
  };
}

async function startInjector(extraSans = ['127.0.0.1']): Promise<SidecarInjector> {
  return SidecarInjector.start({
    kubeConfig: cp!.kubeConfig,
    tls: { namespace: OPERATOR_NS, secretName: SECRET, extraSans },
    webhookConfigurationName: WEBHOOK,
    server: { host: '127.0.0.1', port },
    defaultImage: 'registry.example/kmq:test',
    version: '0.1.0-test',
    checkIntervalMs: 3_600_000,
  });
}

beforeAll(async () => {
  cp = await ControlPlane.start();
  core = cp.kubeConfig.makeApiClient(CoreV1Api);
  admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const ext = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
  // kubectl, as users install them (client-node's typed models would drop x-kubernetes-* fields).
  await run(controlPlaneBinary('kubectl'), ['apply', '--server-side', '--field-manager=kmq-test', '-f', path.join(root, 'crds'), '--kubeconfig', cp.kubeconfigPath]);
  await core.createNamespace({ body: { metadata: { name: OPERATOR_NS } } });
  await core.createNamespace({ body: { metadata: { name: APP_NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } } });
  for (const namespace of [OPERATOR_NS, APP_NS]) await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
  const deadline = Date.now() + 30_000;
  for (const name of ['brokerclusters', 'subscriptions', 'dlqpolicies']) {
    for (;;) {
      const crd = await ext.readCustomResourceDefinition({ name: `${name}.kmq.dev` });
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name}.kmq.dev is not Established`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const create = (plural: string, kind: string, name: string, spec: Record<string, unknown>): Promise<unknown> =>
    custom.createNamespacedCustomObject({ group: 'kmq.dev', version: 'v1alpha1', namespace: APP_NS, plural, body: { apiVersion: 'kmq.dev/v1alpha1', kind, metadata: { name }, spec } });
  await create('brokerclusters', 'BrokerCluster', 'main', { replicas: 1 });
  await create('dlqpolicies', 'DLQPolicy', 'standard', { maxAttempts: 3 });
  await create('subscriptions', 'Subscription', 'billing', { topic: 'orders', dlqPolicy: 'standard' });
  await create('subscriptions', 'Subscription', 'mailer', { queue: 'emails', delivery: { push: {} } });
  port = await freePort();
  await admission.createMutatingWebhookConfiguration({ body: webhookConfiguration() });
  injector = await startInjector();
  await untilInjected();
}, 180_000);

afterAll(async () => {
  await injector?.stop();
  await cp?.stop();
});

describe('sidecar injection through a real API server', () => {
  it('keeps the certificates in a Secret and the CA in the caBundle, patched through the API', async () => {
    const secret = await core.readNamespacedSecret({ namespace: OPERATOR_NS, name: SECRET });
    expect(secret.type).toBe('kubernetes.io/tls');
    const data = (k: string): string => Buffer.from(secret.data![k]!, 'base64').toString('utf8');
    expect(data('ca.crt')).toBe(injector!.certificates.caCert);
    const ca = new crypto.X509Certificate(data('ca.crt'));
    const serving = new crypto.X509Certificate(data('tls.crt'));
    expect(serving.checkIssued(ca) && serving.verify(ca.publicKey)).toBe(true);
    expect(serving.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(serving.checkHost(`kmq-webhook.${OPERATOR_NS}.svc`)).toBe(`kmq-webhook.${OPERATOR_NS}.svc`);
    const config = await admission.readMutatingWebhookConfiguration({ name: WEBHOOK });
    expect(Buffer.from(config.webhooks![0]!.clientConfig.caBundle!, 'base64').toString('utf8')).toBe(data('ca.crt'));
  });

  it('returns a labelled Pod with the sidecar as a native sidecar: the API server called the webhook over TLS', async () => {
    const pod = await createPod(appPod('web-1', { annotations: { 'kmq.dev/subscriptions': 'billing,mailer', 'kmq.dev/app-port': '8080' } }));
    const [sidecar, ...rest] = pod.spec!.initContainers!;
    expect(rest).toEqual([]);
    expect(sidecar!.name).toBe(SIDECAR_CONTAINER_NAME);
    expect(sidecar!.restartPolicy).toBe('Always');
    expect(sidecar!.image).toBe('registry.example/kmq:test');
    expect(pod.metadata!.annotations![INJECTED_ANNOTATION]).toBe('0.1.0-test');
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(['app']);
    // The sidecar accepts the settings the webhook wrote.
    const env = Object.fromEntries(sidecar!.env!.map((e) => [e.name, e.value ?? '']));
    expect(env.KMQ_BROKER).toBe(`main-client.${APP_NS}.svc:9092`);
    const compiled = compileSidecarOptions(loadSidecarOptions(undefined, env));
    expect(compiled).toMatchObject({ brokers: [`main-client.${APP_NS}.svc:9092`], namespace: APP_NS, host: '127.0.0.1', port: 50051, appPort: 8080 });
    expect([...compiled.subscriptions.keys()]).toEqual([`${APP_NS}.billing`, `${APP_NS}.mailer`]);
    expect(compiled.subscriptions.get(`${APP_NS}.billing`)).toMatchObject({ source: { kind: 'topic', name: `${APP_NS}.orders` }, mode: 'ordered', retryPolicy: { maxAttempts: 3 } });
    expect(compiled.subscriptions.get(`${APP_NS}.mailer`)).toMatchObject({ source: { kind: 'queue', name: `${APP_NS}.emails` }, mode: 'shared', pushPort: 8080 });
  });

  it('leaves a Pod without the label untouched', async () => {
    const pod = await createPod(appPod('plain', { label: false }));
    expect(pod.spec!.initContainers ?? []).toEqual([]);
    expect(pod.metadata!.annotations?.[INJECTED_ANNOTATION]).toBeUndefined();
  });

  it('never injects twice: the same spec created twice, an injected Pod submitted again, a label change', async () => {
    const a = await createPod(appPod('twice-a'));
    const b = await createPod(appPod('twice-b'));
    expect([sidecarsOf(a), sidecarsOf(b)]).toEqual([1, 1]);
    const again: V1Pod = { metadata: { name: 'twice-c', labels: a.metadata!.labels!, annotations: a.metadata!.annotations! }, spec: a.spec! };
    const c = await createPod(again);
    expect(sidecarsOf(c)).toBe(1);
    expect(c.spec!.initContainers!.map((x) => x.name)).toEqual([SIDECAR_CONTAINER_NAME]);
    const patched = await core.patchNamespacedPod({ namespace: APP_NS, name: 'twice-a', body: [{ op: 'add', path: '/metadata/labels/tier', value: 'web' }] });
    expect(sidecarsOf(patched)).toBe(1);
  });

  it('the restricted namespace accepts the injected Pod and refuses a Pod that is not restricted', async () => {
    const pod = await core.readNamespacedPod({ namespace: APP_NS, name: 'web-1' });
    expect(sidecarsOf(pod)).toBe(1);
    const loose: V1Pod = { metadata: { name: 'loose', labels: { 'kmq.dev/inject': 'true' } }, spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] } };
    expect(await refusal(() => createPod(loose))).toMatch(/violates PodSecurity "restricted:latest"/);
  });

  it('refuses a labelled Pod with a malformed annotation or a missing Subscription, with a clear message', async () => {
    expect(await refusal(() => createPod(appPod('bad-port', { annotations: { 'kmq.dev/app-port': 'http' } })))).toContain('kmq.dev/app-port must be a port number from 1 to 65535 (got "http")');
    expect(await refusal(() => createPod(appPod('no-sub', { annotations: { 'kmq.dev/subscriptions': 'ghost' } })))).toContain(`Subscription "ghost" (annotation kmq.dev/subscriptions) does not exist in namespace ${APP_NS}`);
    expect(await refusal(() => createPod(appPod('no-port', { annotations: { 'kmq.dev/subscriptions': 'mailer' } })))).toContain('set the annotation kmq.dev/app-port');
  });

  it('never touches a labelled Pod in the operator namespace', async () => {
    const pod = await core.createNamespacedPod({ namespace: OPERATOR_NS, body: appPod('own') });
    expect(sidecarsOf(pod)).toBe(0);
  });

  it('a second start reuses the Secret: same CA, same serving certificate, and it serves', async () => {
    const before = await core.readNamespacedSecret({ namespace: OPERATOR_NS, name: SECRET });
    const first = injector!.certificates;
    await injector!.stop();
    injector = undefined;
    injector = await startInjector();
    expect(injector.certificates).toEqual(first);
    const after = await core.readNamespacedSecret({ namespace: OPERATOR_NS, name: SECRET });
    expect(after.metadata!.resourceVersion).toBe(before.metadata!.resourceVersion);
    expect(sidecarsOf(await createPod(appPod('after-restart')))).toBe(1);
  });

  it('puts the CA back into a caBundle that was reset', async () => {
    const config = await admission.readMutatingWebhookConfiguration({ name: WEBHOOK });
    config.webhooks![0]!.clientConfig.caBundle = undefined;
    await admission.replaceMutatingWebhookConfiguration({ name: WEBHOOK, body: config });
    await injector!.check();
    const fixed = await admission.readMutatingWebhookConfiguration({ name: WEBHOOK });
    expect(Buffer.from(fixed.webhooks![0]!.clientConfig.caBundle!, 'base64').toString('utf8')).toBe(injector!.certificates.caCert);
  });

  it('reissues the serving certificate with the same CA when a name is added, and the API server still calls the webhook', async () => {
    const first = injector!.certificates;
    await injector!.stop();
    injector = undefined;
    injector = await startInjector(['127.0.0.1', '::1']);
    const next = injector.certificates;
    expect(next.caCert).toBe(first.caCert);
    expect(next.cert).not.toBe(first.cert);
    expect(new crypto.X509Certificate(next.cert).checkIP('::1')).toBe('::1');
    const secret = await core.readNamespacedSecret({ namespace: OPERATOR_NS, name: SECRET });
    expect(Buffer.from(secret.data!['tls.crt']!, 'base64').toString('utf8')).toBe(next.cert);
    expect(sidecarsOf(await createPod(appPod('after-reissue')))).toBe(1);
  });

  it('regenerates everything when the CA key in the Secret is broken, and the API server trusts the new CA', async () => {
    const first = injector!.certificates;
    const secret = await core.readNamespacedSecret({ namespace: OPERATOR_NS, name: SECRET });
    secret.data!['ca.key'] = Buffer.from('not a key').toString('base64');
    await core.replaceNamespacedSecret({ namespace: OPERATOR_NS, name: SECRET, body: secret });
    await injector!.check();
    const next = injector!.certificates;
    expect(next.caCert).not.toBe(first.caCert);
    const config = await admission.readMutatingWebhookConfiguration({ name: WEBHOOK });
    expect(Buffer.from(config.webhooks![0]!.clientConfig.caBundle!, 'base64').toString('utf8')).toBe(next.caCert);
    await untilInjected();
    expect(sidecarsOf(await createPod(appPod('after-new-ca')))).toBe(1);
  });

  it('with the webhook down, a labelled Pod is refused (failurePolicy Fail) and an unlabelled one is created', async () => {
    await injector!.stop();
    injector = undefined;
    expect(await refusal(() => createPod(appPod('while-down')))).toMatch(/failed calling webhook "sidecar.kmq.dev"/);
    expect(sidecarsOf(await createPod(appPod('plain-while-down', { label: false })))).toBe(0);
  });
});
