import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileWebhookTlsOptions, generateWebhookCertificates, reissueServingCertificate, rotationDecision } from './certificates.js';
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
