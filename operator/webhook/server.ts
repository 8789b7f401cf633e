import https from 'node:https';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type { WebhookCertificates } from './certificates.js';
import { decideInjection, injectionPatch } from './inject.js';
import type { SidecarResolver } from './resolve.js';

/** The path the API server posts AdmissionReviews of pods to. */
export const MUTATE_PODS_PATH = '/mutate-pods';
/** The webhook's container port. */
export const DEFAULT_WEBHOOK_PORT = 9443;

/** Settings of the webhook's HTTPS server. */
export interface WebhookServerOptions {
  /** Default 0.0.0.0. */
  host?: string;
  /** Default 9443; 0 picks a free port. */
  port?: number;
  certificates: WebhookCertificates;
  resolve: SidecarResolver;
  /** Namespaces never injected besides kube-system and the other kube-* ones: the operator's own. */
  protectedNamespaces?: string[];
  /** Largest AdmissionReview accepted. Default 8 MiB (the API server's request limit is 3 MiB). */
  maxBodyBytes?: number;
  /** How long resolving a pod's settings may take; the webhook's timeoutSeconds must be longer. Default 5 s. */
  resolveTimeoutMs?: number;
  log?: Logger;
}

/** An admission.k8s.io/v1 AdmissionReview response. */
export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  /** base64 of the JSON patch. */
  patch?: string;
  status?: { code: number; message: string };
  warnings?: string[];
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  namespace?: string;
  operation?: string;
  object?: unknown;
  dryRun?: boolean;
}

class BadReview extends Error {}

/** The request of an AdmissionReview v1, or BadReview saying what is wrong with it. */
export function parseAdmissionReview(body: unknown): AdmissionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadReview('the body is not a JSON object');
  const r = body as { apiVersion?: unknown; kind?: unknown; request?: unknown };
  if (r.apiVersion !== 'admission.k8s.io/v1' || r.kind !== 'AdmissionReview') throw new BadReview('expected an admission.k8s.io/v1 AdmissionReview');
  const req = r.request as AdmissionRequest | undefined;
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new BadReview('the AdmissionReview has no request');
  if (typeof req.uid !== 'string' || req.uid === '') throw new BadReview('the request has no uid');
  return req;
}

/**
 * Serves AdmissionReview v1 on MUTATE_PODS_PATH over HTTPS, and /healthz and /readyz. Answers:
 * allowed with a JSON patch for a pod that gets the sidecar; allowed unchanged for any other
 * pod or object; refused (allowed false, code 400 or 403, a message saying what to fix) for a pod
 * that opted in but cannot get a working sidecar. A body that is not an AdmissionReview gets
 * HTTP 400; nothing a client sends stops the server.
 */
export class WebhookServer {
  private readonly server: https.Server;
  private readonly log: Logger | undefined;
  private readonly maxBodyBytes: number;
  private readonly resolveTimeoutMs: number;

  constructor(private readonly o: WebhookServerOptions) {
    this.log = o.log;
    this.maxBodyBytes = o.maxBodyBytes ?? 8 * 1024 * 1024;
    this.resolveTimeoutMs = o.resolveTimeoutMs ?? 5_000;
    this.server = https.createServer({ cert: o.certificates.cert, key: o.certificates.key, minVersion: 'TLSv1.2' }, (req, res) => void this.handle(req, res));
    this.server.on('tlsClientError', (err) => this.log?.debug({ err: err.message }, 'TLS handshake failed'));
  }

  /** Starts listening; resolves to the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port ?? DEFAULT_WEBHOOK_PORT, this.o.host ?? '0.0.0.0', () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Serves new certificates to the connections opened from now on. */
  setCertificates(c: WebhookCertificates): void {
    this.server.setSecureContext({ cert: c.cert, key: c.key });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const url = (req.url ?? '/').split('?')[0];
      if (url === '/healthz' || url === '/readyz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      if (url !== MUTATE_PODS_PATH) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      if (req.method !== 'POST') {
        res.writeHead(405, { 'content-type': 'text/plain', allow: 'POST' }).end('POST an AdmissionReview\n');
        return;
      }
      const body = await this.readBody(req);
      if (body === undefined) {
        res.writeHead(413, { 'content-type': 'text/plain' }).end(`an AdmissionReview is at most ${this.maxBodyBytes} bytes\n`);
        return;
      }
      let request: AdmissionRequest;
      try {
        request = parseAdmissionReview(JSON.parse(body.toString('utf8')));
      } catch (err) {
        const message = err instanceof BadReview ? err.message : `the body is not JSON: ${(err as Error).message}`;
        this.log?.warn({ err: message }, 'Malformed AdmissionReview');
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`${message}\n`);
        return;
      }
      const response = await this.review(request);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
    } catch (err) {
      this.log?.error({ err }, 'Admission review failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    }
  }

  /** The body, or undefined when it is larger than maxBodyBytes. */
  private readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.maxBodyBytes) tooLarge = true;
        else chunks.push(chunk);
      });
      req.on('end', () => resolve(tooLarge ? undefined : Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  /** The answer to one admission request. */
  async review(request: AdmissionRequest): Promise<AdmissionResponse> {
    const uid = request.uid;
    const isPod = request.kind?.kind === 'Pod' && (request.kind.group ?? '') === '';
    if (!isPod || request.operation !== 'CREATE') return { uid, allowed: true };
    const pod = request.object as V1Pod | undefined;
    if (typeof pod !== 'object' || pod === null || Array.isArray(pod)) return { uid, allowed: false, status: { code: 400, message: 'kmq sidecar injection: the request has no pod' } };
    const namespace = request.namespace ?? pod.metadata?.namespace ?? '';
    const podName = pod.metadata?.name ?? pod.metadata?.generateName ?? '';
    const decision = decideInjection(pod, namespace, this.o.protectedNamespaces);
    if (decision.action === 'skip') {
      this.log?.debug({ namespace, pod: podName, reason: decision.reason }, 'Pod not injected');
      return { uid, allowed: true };
    }
    if (decision.action === 'deny') {
      this.log?.info({ namespace, pod: podName, reason: decision.message }, 'Pod refused');
      return { uid, allowed: false, status: { code: 400, message: decision.message } };
    }
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new KmqError(ErrorCode.RequestTimedOut, `reading the namespace's kmq objects took longer than ${this.resolveTimeoutMs} ms`)), this.resolveTimeoutMs);
    let resolution;
    try {
      resolution = await Promise.race([
        this.o.resolve(namespace, decision.request, ac.signal),
        new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason as Error), { once: true })),
      ]);
    } catch (err) {
      const message = `kmq sidecar injection: cannot read the kmq objects of namespace ${namespace}: ${(err as Error).message}`;
      this.log?.warn({ namespace, pod: podName, err }, 'Sidecar settings not resolved');
      return { uid, allowed: false, status: { code: 500, message } };
    } finally {
      clearTimeout(timer);
    }
    if (!resolution.ok) {
      this.log?.info({ namespace, pod: podName, reason: resolution.message }, 'Pod refused');
      return { uid, allowed: false, status: { code: 403, message: `kmq sidecar injection: ${resolution.message}` } };
    }
    const patch = injectionPatch(pod, resolution.context);
    this.log?.info({ namespace, pod: podName, subscriptions: decision.request.subscriptions, dryRun: request.dryRun === true }, 'Sidecar injected');
    return { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') };
  }
}
