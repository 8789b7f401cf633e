import https from 'node:https';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWebhookTlsOptions, generateWebhookCertificates } from './certificates.js';
import { INJECTED_ANNOTATION, SIDECAR_CONTAINER_NAME } from './inject.js';
import type { JsonPatchOp } from './inject.js';
import type { Resolution, SidecarResolver } from './resolve.js';
import { MUTATE_PODS_PATH, WebhookServer } from './server.js';

const tls = compileWebhookTlsOptions({ namespace: 'kmq-system', extraSans: ['127.0.0.1'] });
const certs = generateWebhookCertificates(tls);

let resolution: (namespace: string) => Promise<Resolution> = (namespace) =>
  Promise.resolve({ ok: true, context: { namespace, brokerAddress: `main-client.${namespace}.svc:9092`, image: 'kmq:test', subscriptions: [], version: '0.1.0' } });
const resolve: SidecarResolver = (namespace) => resolution(namespace);

let server: WebhookServer;
let port: number;

beforeAll(async () => {
  server = new WebhookServer({ host: '127.0.0.1', port: 0, certificates: certs, resolve, protectedNamespaces: ['kmq-system'], resolveTimeoutMs: 300, maxBodyBytes: 64 * 1024 });
  port = await server.listen();
});

afterAll(async () => {
  await server.close();
});

/** A request to the server, verifying its certificate against `ca`. */
function request(method: string, path: string, body?: string, ca = certs.caCert): Promise<{ status: number; body: string }> {
  return new Promise((resolveRequest, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method, path, ca, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveRequest({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function review(object: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'shop', operation: 'CREATE', object, ...extra },
  });
}

interface Response {
  uid: string;
  allowed: boolean;
  patchType?: string;
  patch?: string;
  status?: { code: number; message: string };
}

async function admit(body: string): Promise<Response> {
  const res = await request('POST', MUTATE_PODS_PATH, body);
  expect(res.status).toBe(200);
  const parsed = JSON.parse(res.body) as { apiVersion: string; kind: string; response: Response };
  expect(parsed.apiVersion).toBe('admission.k8s.io/v1');
  expect(parsed.kind).toBe('AdmissionReview');
  return parsed.response;
}

const labelled: V1Pod = { metadata: { generateName: 'app-', labels: { 'kmq.dev/inject': 'true' } }, spec: { containers: [{ name: 'app', image: 'app:1' }] } };

describe('WebhookServer', () => {
  it('serves a certificate the CA verifies, for 127.0.0.1', async () => {
    expect((await request('GET', '/healthz')).status).toBe(200);
    expect((await request('GET', '/readyz')).status).toBe(200);
    const other = generateWebhookCertificates(tls);
    await expect(request('GET', '/healthz', undefined, other.caCert)).rejects.toThrow();
  });

  it('answers an opted-in pod with a JSON patch that adds the sidecar', async () => {
    const r = await admit(review(labelled));
    expect(r).toMatchObject({ uid: 'u-1', allowed: true, patchType: 'JSONPatch' });
    const ops = JSON.parse(Buffer.from(r.patch!, 'base64').toString('utf8')) as JsonPatchOp[];
    expect(ops[0]!.path).toBe('/spec/initContainers');
    const [sidecar] = ops[0]!.value as V1Container[];
    expect(sidecar!.name).toBe(SIDECAR_CONTAINER_NAME);
    expect(sidecar!.restartPolicy).toBe('Always');
    expect(sidecar!.env).toContainEqual({ name: 'KMQ_BROKER', value: 'main-client.shop.svc:9092' });
    expect(ops[1]).toEqual({ op: 'add', path: '/metadata/annotations', value: { [INJECTED_ANNOTATION]: '0.1.0' } });
  });

  it('allows other pods, other operations and other kinds unchanged', async () => {
    expect(await admit(review({ ...labelled, metadata: { name: 'x' } }))).toEqual({ uid: 'u-1', allowed: true });
    expect(await admit(review(labelled, { namespace: 'kmq-system' }))).toEqual({ uid: 'u-1', allowed: true });
    expect(await admit(review(labelled, { operation: 'UPDATE' }))).toEqual({ uid: 'u-1', allowed: true });
    expect(await admit(review({ metadata: { name: 'c' } }, { kind: { group: '', version: 'v1', kind: 'ConfigMap' } }))).toEqual({ uid: 'u-1', allowed: true });
  });

  it('refuses an opted-in pod with malformed annotations, saying which', async () => {
    const r = await admit(review({ ...labelled, metadata: { ...labelled.metadata, annotations: { 'kmq.dev/subscriptions': 'a,,b' } } }));
    expect(r.allowed).toBe(false);
    expect(r.status).toEqual({ code: 400, message: expect.stringContaining('kmq.dev/subscriptions') as unknown });
  });

  it('refuses a pod whose settings cannot be resolved, and one whose resolution fails or hangs', async () => {
    const saved = resolution;
    try {
      resolution = () => Promise.resolve({ ok: false, message: 'Subscription "billing" does not exist in namespace shop' });
      expect(await admit(review(labelled))).toEqual({ uid: 'u-1', allowed: false, status: { code: 403, message: 'kmq sidecar injection: Subscription "billing" does not exist in namespace shop' } });
      resolution = () => Promise.reject(new Error('connection refused'));
      const failed = await admit(review(labelled));
      expect(failed.allowed).toBe(false);
      expect(failed.status!.message).toContain('connection refused');
      resolution = () => new Promise(() => {});
      const hung = await admit(review(labelled));
      expect(hung.allowed).toBe(false);
      expect(hung.status!.message).toContain('longer than 300 ms');
    } finally {
      resolution = saved;
    }
  });

  it('answers 400 to a body that is not an AdmissionReview, and keeps serving', async () => {
    const bad = [
      'not json',
      '[]',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } }),
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }),
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' } } }),
    ];
    for (const body of bad) {
      const res = await request('POST', MUTATE_PODS_PATH, body);
      expect(res.status, body).toBe(400);
    }
    expect((await admit(review(null))).allowed).toBe(false);
    expect((await request('POST', MUTATE_PODS_PATH, 'x'.repeat(100 * 1024))).status).toBe(413);
    expect((await request('GET', MUTATE_PODS_PATH)).status).toBe(405);
    expect((await request('POST', '/other', '{}')).status).toBe(404);
    expect((await admit(review(labelled))).allowed).toBe(true);
  });

  it('serves new certificates to new connections after setCertificates', async () => {
    const next = generateWebhookCertificates(tls);
    server.setCertificates(next);
    try {
      expect((await request('GET', '/healthz', undefined, next.caCert)).status).toBe(200);
      await expect(request('GET', '/healthz', undefined, certs.caCert)).rejects.toThrow();
    } finally {
      server.setCertificates(certs);
    }
  });
});
