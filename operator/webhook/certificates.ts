import crypto from 'node:crypto';
import net from 'node:net';
import type { AdmissionregistrationV1Api, CoreV1Api, V1Secret } from '@kubernetes/client-node';
import forge from 'node-forge';
import type { Logger } from 'pino';
import { ErrorCode, KmqError } from '../../lib/errors.js';

/**
 * The webhook's TLS, managed by the operator itself: a self-signed CA and a serving
 * certificate it signs, kept in one Secret (type kubernetes.io/tls: `tls.crt`, `tls.key`,
 * plus `ca.crt` and `ca.key`) so every replica serves the same certificate, and the CA
 * written into the `caBundle` of the MutatingWebhookConfiguration's webhooks.
 *
 * The serving certificate is reissued (by the same CA, so the caBundle does not change)
 * when it is within `renewBeforeMs` of expiry or does not cover the names wanted; the CA
 * is regenerated, with a new serving certificate, only when it is itself near expiry or
 * the Secret is unreadable.
 */

/** The certificates and keys, PEM. */
export interface WebhookCertificates {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

/** Settings of the webhook's TLS. */
export interface WebhookTlsOptions {
  /** The operator's namespace: where the Secret and the webhook Service are. */
  namespace: string;
  /** Default kmq-webhook-tls. */
  secretName?: string;
  /** The webhook Service; the certificate covers `<service>`, `<service>.<namespace>`, `.svc` and `.svc.cluster.local`. Default kmq-webhook. */
  serviceName?: string;
  /** More names or IP addresses the certificate covers (127.0.0.1 for tests). */
  extraSans?: string[];
  /** Default 10 years. */
  caValidityMs?: number;
  /** Default 1 year. */
  servingValidityMs?: number;
  /** Renew a certificate this long before it expires. Default 30 days. */
  renewBeforeMs?: number;
  /** The clock, for tests. */
  now?: () => number;
}

export interface CompiledWebhookTlsOptions {
  namespace: string;
  secretName: string;
  serviceName: string;
  /** Every name and address the serving certificate must cover. */
  sans: string[];
  caValidityMs: number;
  servingValidityMs: number;
  renewBeforeMs: number;
  now: () => number;
}

export const DEFAULT_WEBHOOK_SECRET = 'kmq-webhook-tls';
export const DEFAULT_WEBHOOK_SERVICE = 'kmq-webhook';
const DAY_MS = 86_400_000;

function invalid(setting: string, message: string): KmqError {
  return new KmqError(ErrorCode.InvalidConfig, `Invalid option ${setting}: ${message}`, { setting }, { retriable: false });
}

export function compileWebhookTlsOptions(o: WebhookTlsOptions): CompiledWebhookTlsOptions {
  if (o.namespace === '') throw invalid('namespace', 'is required');
  const serviceName = o.serviceName ?? DEFAULT_WEBHOOK_SERVICE;
  const caValidityMs = o.caValidityMs ?? 3650 * DAY_MS;
  const servingValidityMs = o.servingValidityMs ?? 365 * DAY_MS;
  const renewBeforeMs = o.renewBeforeMs ?? 30 * DAY_MS;
  if (renewBeforeMs <= 0 || renewBeforeMs >= servingValidityMs) throw invalid('renewBeforeMs', 'must be positive and shorter than servingValidityMs');
  if (caValidityMs < servingValidityMs) throw invalid('caValidityMs', 'must be at least servingValidityMs');
  const names = [serviceName, `${serviceName}.${o.namespace}`, `${serviceName}.${o.namespace}.svc`, `${serviceName}.${o.namespace}.svc.cluster.local`, ...(o.extraSans ?? [])];
  return {
    namespace: o.namespace,
    secretName: o.secretName ?? DEFAULT_WEBHOOK_SECRET,
    serviceName,
    sans: [...new Set(names)],
    caValidityMs,
    servingValidityMs,
    renewBeforeMs,
    now: o.now ?? Date.now,
  };
}

function serialNumber(): string {
  // Positive (high bit clear), 16 bytes, as RFC 5280 recommends.
  const b = crypto.randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

function keyPair(): forge.pki.rsa.KeyPair {
  // Node's generator (native) in forge's form: forge's own pure-JS RSA takes seconds.
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;
  return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e) };
}

function newCertificate(publicKey: forge.pki.PublicKey, now: number, validityMs: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  // Backdated a little so a clock slightly behind ours accepts it at once.
  cert.validity.notBefore = new Date(now - 5 * 60_000);
  cert.validity.notAfter = new Date(now + validityMs);
  return cert;
}

/** A new self-signed CA. */
function generateCa(o: CompiledWebhookTlsOptions, now: number): { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } {
  const keys = keyPair();
  const cert = newCertificate(keys.publicKey, now, o.caValidityMs);
  const subject = [{ name: 'commonName', value: `kmq-webhook-ca.${o.namespace}` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert, key: keys.privateKey };
}

/** A serving certificate for `o.sans`, signed by the CA. */
function issueServing(o: CompiledWebhookTlsOptions, ca: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey }, now: number): { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } {
  const keys = keyPair();
  const cert = newCertificate(keys.publicKey, now, o.servingValidityMs);
  cert.setSubject([{ name: 'commonName', value: `${o.serviceName}.${o.namespace}.svc` }]);
  cert.setIssuer(ca.cert.subject.attributes);
  const altNames = o.sans.map((san) => (net.isIP(san) !== 0 ? { type: 7, ip: san } : { type: 2, value: san }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(ca.key, forge.md.sha256.create());
  return { cert, key: keys.privateKey };
}

/** A new CA and a serving certificate it signs. */
export function generateWebhookCertificates(o: CompiledWebhookTlsOptions): WebhookCertificates {
  const now = o.now();
  const ca = generateCa(o, now);
  const serving = issueServing(o, ca, now);
  return pem(ca, serving);
}

/** A new serving certificate signed by the CA of `existing`. */
export function reissueServingCertificate(o: CompiledWebhookTlsOptions, existing: WebhookCertificates): WebhookCertificates {
  const ca = { cert: forge.pki.certificateFromPem(existing.caCert), key: forge.pki.privateKeyFromPem(existing.caKey) as forge.pki.rsa.PrivateKey };
  return pem(ca, issueServing(o, ca, o.now()));
}

function pem(ca: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey }, serving: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey }): WebhookCertificates {
  return {
    caCert: forge.pki.certificateToPem(ca.cert),
    caKey: forge.pki.privateKeyToPem(ca.key),
    cert: forge.pki.certificateToPem(serving.cert),
    key: forge.pki.privateKeyToPem(serving.key),
  };
}

/** What to do with the certificates found in the Secret. */
export type RotationDecision = { action: 'reuse' } | { action: 'reissue-serving'; reason: string } | { action: 'regenerate'; reason: string };

/** The names and addresses of a certificate's subjectAltName (IP addresses as `IP Address:...` in Node's form). */
function altNames(cert: crypto.X509Certificate): Set<string> {
  const out = new Set<string>();
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    const m = /^(DNS|IP Address):(.*)$/.exec(part);
    if (m) out.add(m[2]!);
  }
  return out;
}

/** Whether `found` can still be served, needs a new serving certificate, or a new CA. */
export function rotationDecision(o: CompiledWebhookTlsOptions, found: WebhookCertificates | undefined): RotationDecision {
  if (found === undefined) return { action: 'regenerate', reason: 'no certificates yet' };
  const now = o.now();
  let ca: crypto.X509Certificate;
  let serving: crypto.X509Certificate;
  try {
    ca = new crypto.X509Certificate(found.caCert);
    serving = new crypto.X509Certificate(found.cert);
    const caKey = crypto.createPrivateKey(found.caKey);
    if (!ca.checkPrivateKey(caKey)) return { action: 'regenerate', reason: 'ca.key does not match ca.crt' };
    if (!serving.checkPrivateKey(crypto.createPrivateKey(found.key))) return { action: 'reissue-serving', reason: 'tls.key does not match tls.crt' };
  } catch (err) {
    return { action: 'regenerate', reason: `unreadable certificates: ${(err as Error).message}` };
  }
  if (!ca.ca) return { action: 'regenerate', reason: 'ca.crt is not a CA certificate' };
  if (Date.parse(ca.validTo) - now < o.renewBeforeMs) return { action: 'regenerate', reason: `CA expires ${ca.validTo}` };
  if (!serving.checkIssued(ca) || !serving.verify(ca.publicKey)) return { action: 'reissue-serving', reason: 'tls.crt is not signed by ca.crt' };
  if (Date.parse(serving.validTo) - now < o.renewBeforeMs) return { action: 'reissue-serving', reason: `serving certificate expires ${serving.validTo}` };
  if (Date.parse(serving.validFrom) > now) return { action: 'reissue-serving', reason: `serving certificate not valid before ${serving.validFrom}` };
  const covered = altNames(serving);
  const missing = o.sans.filter((s) => !covered.has(s));
  if (missing.length > 0) return { action: 'reissue-serving', reason: `serving certificate does not cover ${missing.join(', ')}` };
  return { action: 'reuse' };
}

function fromSecret(secret: V1Secret): WebhookCertificates | undefined {
  const d = secret.data ?? {};
  const get = (k: string): string | undefined => (d[k] === undefined ? undefined : Buffer.from(d[k]!, 'base64').toString('utf8'));
  const caCert = get('ca.crt');
  const caKey = get('ca.key');
  const cert = get('tls.crt');
  const key = get('tls.key');
  if (caCert === undefined || caKey === undefined || cert === undefined || key === undefined) return undefined;
  return { caCert, caKey, cert, key };
}

function secretData(c: WebhookCertificates): Record<string, string> {
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  return { 'ca.crt': b64(c.caCert), 'ca.key': b64(c.caKey), 'tls.crt': b64(c.cert), 'tls.key': b64(c.key) };
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/**
 * Reads the certificates from the Secret, creating or rotating them when needed, and returns
 * the ones to serve. Replicas racing to create or update the Secret converge on the winner's
 * (a 409 makes the loser read it again).
 */
export async function ensureWebhookCertificates(core: CoreV1Api, o: CompiledWebhookTlsOptions, log?: Logger): Promise<WebhookCertificates> {
  for (let attempt = 0; attempt < 5; attempt++) {
    let secret: V1Secret | undefined;
    try {
      secret = await core.readNamespacedSecret({ name: o.secretName, namespace: o.namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const found = secret === undefined ? undefined : fromSecret(secret);
    const decision = rotationDecision(o, found);
    if (decision.action === 'reuse') return found!;
    const next = decision.action === 'reissue-serving' ? reissueServingCertificate(o, found!) : generateWebhookCertificates(o);
    try {
      if (secret === undefined) {
        await core.createNamespacedSecret({
          namespace: o.namespace,
          body: { metadata: { name: o.secretName, labels: { 'app.kubernetes.io/name': 'kmq', 'app.kubernetes.io/component': 'webhook' } }, type: 'kubernetes.io/tls', data: secretData(next) },
        });
      } else {
        // The resourceVersion read makes this a compare-and-swap.
        await core.replaceNamespacedSecret({ name: o.secretName, namespace: o.namespace, body: { ...secret, data: { ...secret.data, ...secretData(next) } } });
      }
      log?.info({ secret: o.secretName, action: decision.action, reason: decision.reason }, 'Webhook certificates written');
      return next;
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
  }
  throw new KmqError(ErrorCode.Unknown, `Secret ${o.namespace}/${o.secretName} kept changing while its certificates were written`, { secret: o.secretName }, { retriable: true });
}

/**
 * Writes the CA into the caBundle of every webhook of the MutatingWebhookConfiguration `name`.
 * Returns false when the configuration does not exist (yet); true once every caBundle holds it.
 */
export async function patchCaBundle(admission: AdmissionregistrationV1Api, name: string, caCert: string, log?: Logger): Promise<boolean> {
  const bundle = Buffer.from(caCert, 'utf8').toString('base64');
  for (let attempt = 0; attempt < 5; attempt++) {
    let config;
    try {
      config = await admission.readMutatingWebhookConfiguration({ name });
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
    const webhooks = config.webhooks ?? [];
    if (webhooks.every((w) => w.clientConfig.caBundle === bundle)) return true;
    for (const w of webhooks) w.clientConfig.caBundle = bundle;
    try {
      await admission.replaceMutatingWebhookConfiguration({ name, body: config });
      log?.info({ webhookConfiguration: name, webhooks: webhooks.length }, 'Webhook caBundle updated');
      return true;
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
    }
  }
  throw new KmqError(ErrorCode.Unknown, `MutatingWebhookConfiguration ${name} kept changing while its caBundle was written`, { webhookConfiguration: name }, { retriable: true });
}
