import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AdmissionregistrationV1Api, CoreV1Api, V1MutatingWebhookConfiguration, V1Secret } from '@kubernetes/client-node';
import { compileWebhookTlsOptions, ensureWebhookCertificates, generateWebhookCertificates, patchCaBundle, reissueServingCertificate, rotationDecision } from './certificates.js';
import type { CompiledWebhookTlsOptions } from './certificates.js';

const DAY = 86_400_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

function options(now = T0, extra: Partial<Parameters<typeof compileWebhookTlsOptions>[0]> = {}): CompiledWebhookTlsOptions {
  return compileWebhookTlsOptions({ namespace: 'kmq-system', serviceName: 'kmq-webhook', extraSans: ['127.0.0.1'], now: () => now, ...extra });
}

const o = options();
const certs = generateWebhookCertificates(o);

describe('generateWebhookCertificates', () => {
  const ca = new crypto.X509Certificate(certs.caCert);
  const serving = new crypto.X509Certificate(certs.cert);

  it('covers the Service DNS names and the extra addresses', () => {
    expect(o.sans).toEqual(['kmq-webhook', 'kmq-webhook.kmq-system', 'kmq-webhook.kmq-system.svc', 'kmq-webhook.kmq-system.svc.cluster.local', '127.0.0.1']);
    expect(serving.subjectAltName!.split(', ')).toEqual([
      'DNS:kmq-webhook',
      'DNS:kmq-webhook.kmq-system',
      'DNS:kmq-webhook.kmq-system.svc',
      'DNS:kmq-webhook.kmq-system.svc.cluster.local',
      'IP Address:127.0.0.1',
    ]);
    expect(serving.checkHost('kmq-webhook.kmq-system.svc')).toBe('kmq-webhook.kmq-system.svc');
    expect(serving.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(serving.checkHost('other.kmq-system.svc')).toBeUndefined();
  });

  it('has a CA that signs the serving certificate', () => {
    expect(ca.ca).toBe(true);
    expect(serving.ca).toBe(false);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(serving.checkIssued(ca)).toBe(true);
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(serving.verify(serving.publicKey)).toBe(false);
    expect(serving.checkPrivateKey(crypto.createPrivateKey(certs.key))).toBe(true);
    expect(ca.checkPrivateKey(crypto.createPrivateKey(certs.caKey))).toBe(true);
    expect(serving.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
  });

  it('is valid from a little before now for the configured periods', () => {
    expect(Date.parse(serving.validFrom)).toBeLessThanOrEqual(T0);
    expect(Date.parse(serving.validTo)).toBe(T0 + 365 * DAY);
    expect(Date.parse(ca.validTo)).toBe(T0 + 3650 * DAY);
  });

  it('gives each certificate its own key and serial number', () => {
    const again = generateWebhookCertificates(o);
    expect(again.caKey).not.toBe(certs.caKey);
    expect(new crypto.X509Certificate(again.cert).serialNumber).not.toBe(serving.serialNumber);
    expect(new crypto.X509Certificate(again.cert).checkIssued(ca)).toBe(false);
  });
});

describe('rotationDecision', () => {
  it('reuses valid certificates that cover the names', () => {
    expect(rotationDecision(o, certs)).toEqual({ action: 'reuse' });
    expect(rotationDecision(options(T0 + 300 * DAY), certs)).toEqual({ action: 'reuse' });
  });

  it('generates everything when there is nothing, or nothing readable', () => {
    expect(rotationDecision(o, undefined).action).toBe('regenerate');
    expect(rotationDecision(o, { ...certs, caCert: 'not a certificate' }).action).toBe('regenerate');
    const other = generateWebhookCertificates(o);
    expect(rotationDecision(o, { ...certs, caKey: other.caKey })).toEqual({ action: 'regenerate', reason: 'ca.key does not match ca.crt' });
  });

  it('reissues the serving certificate near its expiry', () => {
    const d = rotationDecision(options(T0 + 340 * DAY), certs);
    expect(d).toEqual({ action: 'reissue-serving', reason: expect.stringContaining('serving certificate expires') as unknown });
    expect(rotationDecision(options(T0 + 400 * DAY), certs).action).toBe('reissue-serving');
  });

  it('regenerates the CA near its expiry', () => {
    expect(rotationDecision(options(T0 + 3630 * DAY), certs)).toEqual({ action: 'regenerate', reason: expect.stringContaining('CA expires') as unknown });
  });

  it('reissues when a wanted name is not covered, or the serving certificate is not the CA\'s', () => {
    expect(rotationDecision(options(T0, { extraSans: ['127.0.0.1', '10.0.0.7'] }), certs)).toEqual({ action: 'reissue-serving', reason: 'serving certificate does not cover 10.0.0.7' });
    expect(rotationDecision(options(T0, { serviceName: 'other' }), certs).action).toBe('reissue-serving');
    const other = generateWebhookCertificates(o);
    expect(rotationDecision(o, { ...certs, cert: other.cert, key: other.key })).toEqual({ action: 'reissue-serving', reason: 'tls.crt is not signed by ca.crt' });
    expect(rotationDecision(o, { ...certs, key: other.key })).toEqual({ action: 'reissue-serving', reason: 'tls.key does not match tls.crt' });
  });

  it('after a reissue, reuses the result: same CA, a new serving certificate it signs', () => {
    const later = options(T0 + 340 * DAY);
    const next = reissueServingCertificate(later, certs);
    expect(next.caCert).toBe(certs.caCert);
    expect(next.caKey).toBe(certs.caKey);
    expect(next.cert).not.toBe(certs.cert);
    const serving = new crypto.X509Certificate(next.cert);
    expect(serving.checkIssued(new crypto.X509Certificate(certs.caCert))).toBe(true);
    expect(serving.verify(new crypto.X509Certificate(certs.caCert).publicKey)).toBe(true);
    expect(rotationDecision(later, next)).toEqual({ action: 'reuse' });
  });
});

describe('compileWebhookTlsOptions', () => {
  it('fills the defaults', () => {
    const c = compileWebhookTlsOptions({ namespace: 'ns' });
    expect(c).toMatchObject({ secretName: 'kmq-webhook-tls', serviceName: 'kmq-webhook', renewBeforeMs: 30 * DAY, servingValidityMs: 365 * DAY, caValidityMs: 3650 * DAY });
    expect(c.sans).toEqual(['kmq-webhook', 'kmq-webhook.ns', 'kmq-webhook.ns.svc', 'kmq-webhook.ns.svc.cluster.local']);
  });

  it('refuses settings that would rotate forever', () => {
    expect(() => compileWebhookTlsOptions({ namespace: 'ns', renewBeforeMs: 400 * DAY })).toThrow(/renewBeforeMs/);
    expect(() => compileWebhookTlsOptions({ namespace: 'ns', caValidityMs: DAY })).toThrow(/caValidityMs/);
    expect(() => compileWebhookTlsOptions({ namespace: '' })).toThrow(/namespace/);
  });
});

function apiError(code: number): Error {
  return Object.assign(new Error(`HTTP ${code}`), { code });
}

function secretOf(c: typeof certs, resourceVersion = '1'): V1Secret {
  const b64 = (x: string): string => Buffer.from(x).toString('base64');
  return { metadata: { name: 'kmq-webhook-tls', resourceVersion }, type: 'kubernetes.io/tls', data: { 'ca.crt': b64(c.caCert), 'ca.key': b64(c.caKey), 'tls.crt': b64(c.cert), 'tls.key': b64(c.key) } };
}

/** A CoreV1Api with one Secret in memory; `beforeWrite` runs before each create or replace (to make another writer win). */
function fakeCore(initial: V1Secret | undefined, beforeWrite: (stored: { secret: V1Secret | undefined }) => void = () => {}): { api: CoreV1Api; stored: { secret: V1Secret | undefined }; writes: string[] } {
  const stored = { secret: initial };
  const writes: string[] = [];
  const api = {
    readNamespacedSecret: () => (stored.secret === undefined ? Promise.reject(apiError(404)) : Promise.resolve(structuredClone(stored.secret))),
    createNamespacedSecret: ({ body }: { body: V1Secret }) => {
      beforeWrite(stored);
      writes.push('create');
      if (stored.secret !== undefined) return Promise.reject(apiError(409));
      stored.secret = { ...body, metadata: { ...body.metadata, resourceVersion: '1' } };
      return Promise.resolve(stored.secret);
    },
    replaceNamespacedSecret: ({ body }: { body: V1Secret }) => {
      beforeWrite(stored);
      writes.push('replace');
      if (body.metadata?.resourceVersion !== stored.secret?.metadata?.resourceVersion) return Promise.reject(apiError(409));
      stored.secret = { ...body, metadata: { ...body.metadata, resourceVersion: String(Number(body.metadata!.resourceVersion) + 1) } };
      return Promise.resolve(stored.secret);
    },
  };
  return { api: api as unknown as CoreV1Api, stored, writes };
}

describe('ensureWebhookCertificates', () => {
  it('creates the Secret when there is none, then reuses it', async () => {
    const core = fakeCore(undefined);
    const made = await ensureWebhookCertificates(core.api, o);
    expect(core.writes).toEqual(['create']);
    expect(core.stored.secret!.type).toBe('kubernetes.io/tls');
    expect(await ensureWebhookCertificates(core.api, o)).toEqual(made);
    expect(core.writes).toEqual(['create']);
  });

  it('takes the certificates of a replica that created the Secret first', async () => {
    const winner = generateWebhookCertificates(o);
    let raced = false;
    const core = fakeCore(undefined, (stored) => {
      if (!raced) stored.secret = secretOf(winner);
      raced = true;
    });
    expect(await ensureWebhookCertificates(core.api, o)).toEqual(winner);
  });

  it('reissues into the Secret with a compare-and-swap, and takes another replica\'s newer write', async () => {
    const later = options(T0 + 340 * DAY);
    const core = fakeCore(secretOf(certs));
    const next = await ensureWebhookCertificates(core.api, later);
    expect(core.writes).toEqual(['replace']);
    expect(next.caCert).toBe(certs.caCert);
    expect(next.cert).not.toBe(certs.cert);
    const theirs = reissueServingCertificate(later, certs);
    let raced = false;
    const racing = fakeCore(secretOf(certs), (stored) => {
      if (!raced) stored.secret = secretOf(theirs, '2');
      raced = true;
    });
    expect(await ensureWebhookCertificates(racing.api, later)).toEqual(theirs);
  });

  it('passes on errors other than NotFound', async () => {
    const api = { readNamespacedSecret: () => Promise.reject(apiError(403)) } as unknown as CoreV1Api;
    await expect(ensureWebhookCertificates(api, o)).rejects.toThrow('HTTP 403');
  });
});

describe('patchCaBundle', () => {
  function fakeAdmission(config: V1MutatingWebhookConfiguration | undefined, conflicts = 0): { api: AdmissionregistrationV1Api; replaced: V1MutatingWebhookConfiguration[] } {
    const replaced: V1MutatingWebhookConfiguration[] = [];
    const api = {
      readMutatingWebhookConfiguration: () => (config === undefined ? Promise.reject(apiError(404)) : Promise.resolve(structuredClone(config))),
      replaceMutatingWebhookConfiguration: ({ body }: { body: V1MutatingWebhookConfiguration }) => {
        if (conflicts-- > 0) return Promise.reject(apiError(409));
        replaced.push(body);
        return Promise.resolve(body);
      },
    };
    return { api: api as unknown as AdmissionregistrationV1Api, replaced };
  }
  const hook = (caBundle?: string): V1MutatingWebhookConfiguration['webhooks'] => [
    { name: 'a.kmq.dev', admissionReviewVersions: ['v1'], sideEffects: 'None', clientConfig: { url: 'https://127.0.0.1/mutate-pods', ...(caBundle === undefined ? {} : { caBundle }) } },
  ];
  const bundle = Buffer.from(certs.caCert).toString('base64');

  it('writes the CA into every webhook, retrying a conflict', async () => {
    const f = fakeAdmission({ metadata: { name: 'w' }, webhooks: [...hook()!, ...hook('b2xk')!] }, 1);
    expect(await patchCaBundle(f.api, 'w', certs.caCert)).toBe(true);
    expect(f.replaced).toHaveLength(1);
    expect(f.replaced[0]!.webhooks!.map((w) => w.clientConfig.caBundle)).toEqual([bundle, bundle]);
  });

  it('writes nothing when the caBundle is already the CA, and answers false when there is no configuration', async () => {
    const f = fakeAdmission({ metadata: { name: 'w' }, webhooks: hook(bundle) });
    expect(await patchCaBundle(f.api, 'w', certs.caCert)).toBe(true);
    expect(f.replaced).toEqual([]);
    expect(await patchCaBundle(fakeAdmission(undefined).api, 'w', certs.caCert)).toBe(false);
  });
});
