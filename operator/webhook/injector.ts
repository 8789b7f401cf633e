import { AdmissionregistrationV1Api, CoreV1Api } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { compileWebhookTlsOptions, ensureWebhookCertificates, patchCaBundle } from './certificates.js';
import type { CompiledWebhookTlsOptions, WebhookCertificates, WebhookTlsOptions } from './certificates.js';
import { kubeSidecarResolver } from './resolve.js';
import type { SidecarResolver } from './resolve.js';
import { WebhookServer } from './server.js';
import type { WebhookServerOptions } from './server.js';

/** The MutatingWebhookConfiguration whose caBundle the operator keeps. */
export const DEFAULT_WEBHOOK_CONFIGURATION = 'kmq-sidecar-injector';

/** Settings of the sidecar-injection webhook as the operator runs it. */
export interface SidecarInjectorOptions {
  kubeConfig: KubeConfig;
  /** Where the certificates are kept and which names they cover; the namespace is the operator's. */
  tls: WebhookTlsOptions;
  /** Default kmq-sidecar-injector. */
  webhookConfigurationName?: string;
  /** The HTTPS server: host, port (default 9443), limits. */
  server?: Omit<WebhookServerOptions, 'certificates' | 'resolve' | 'log'>;
  /** The sidecar image when a BrokerCluster names none. */
  defaultImage: string;
  /** The operator's version, the value of the kmq.dev/injected annotation. */
  version: string;
  /** How to turn a pod's request into sidecar settings. Default: read the kmq objects through the API server. */
  resolve?: SidecarResolver;
  /** How often the Secret and the caBundle are checked (rotation, a caBundle reset by a Helm upgrade). Default 60 s. */
  checkIntervalMs?: number;
  log?: Logger;
}

/**
 * The webhook as the operator runs it, on every replica (it needs no leadership): certificates
 * from the Secret (created or rotated when needed), the HTTPS server, and a periodic check that
 * rotates the certificates before they expire and puts the CA back into the caBundle.
 */
export class SidecarInjector {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  private constructor(
    private readonly server: WebhookServer,
    /** The bound port. */
    readonly port: number,
    private current: WebhookCertificates,
    private readonly tls: CompiledWebhookTlsOptions,
    private readonly core: CoreV1Api,
    private readonly admission: AdmissionregistrationV1Api,
    private readonly configurationName: string,
    private readonly log: Logger | undefined,
  ) {}

  static async start(o: SidecarInjectorOptions): Promise<SidecarInjector> {
    const tls = compileWebhookTlsOptions(o.tls);
    const core = o.kubeConfig.makeApiClient(CoreV1Api);
    const admission = o.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    const log = o.log;
    const certificates = await ensureWebhookCertificates(core, tls, log);
    const protectedNamespaces = [...new Set([tls.namespace, ...(o.server?.protectedNamespaces ?? [])])];
    const server = new WebhookServer({
      ...o.server,
      protectedNamespaces,
      certificates,
      resolve: o.resolve ?? kubeSidecarResolver(o.kubeConfig, { defaultImage: o.defaultImage, version: o.version }),
      ...(log === undefined ? {} : { log }),
    });
    const port = await server.listen();
    const name = o.webhookConfigurationName ?? DEFAULT_WEBHOOK_CONFIGURATION;
    const injector = new SidecarInjector(server, port, certificates, tls, core, admission, name, log);
    try {
      if (!(await patchCaBundle(admission, name, certificates.caCert, log))) log?.warn({ webhookConfiguration: name }, 'MutatingWebhookConfiguration not found; its caBundle will be set once it exists');
    } catch (err) {
      log?.warn({ err, webhookConfiguration: name }, 'Webhook caBundle not updated; retrying later');
    }
    log?.info({ port, secret: tls.secretName, webhookConfiguration: name }, 'Sidecar injection webhook started');
    const every = o.checkIntervalMs ?? 60_000;
    injector.timer = setInterval(() => void injector.check(), every);
    injector.timer.unref();
    return injector;
  }

  /** The certificates served now. */
  get certificates(): WebhookCertificates {
    return this.current;
  }

  /** Rotates the certificates when due and puts the CA into the caBundle; errors are logged, and retried at the next check. */
  check(): Promise<void> {
    this.checking ??= this.checkOnce().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    try {
      const next = await ensureWebhookCertificates(this.core, this.tls, this.log);
      if (next.cert !== this.current.cert || next.key !== this.current.key) {
        this.server.setCertificates(next);
        this.current = next;
        this.log?.info({ secret: this.tls.secretName }, 'Webhook serving certificate replaced');
      }
      await patchCaBundle(this.admission, this.configurationName, this.current.caCert, this.log);
    } catch (err) {
      this.log?.warn({ err }, 'Webhook certificate check failed; retrying later');
    }
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.checking;
    await this.server.close();
  }
}
