import https from 'node:https';
import { Observable } from '@kubernetes/client-node';
import type { ConfigurationOptions } from '@kubernetes/client-node';

const TLS_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

/**
 * Per-call options for client-node API calls: a deadline (the request is aborted after
 * it), and connection reuse. client-node builds a new https.Agent for every request, so
 * every call would open (and handshake) a new TLS connection; calls whose agent has the
 * TLS options of the previous one use one kept-alive agent instead. New credentials (a
 * rotated client certificate) get a new agent; proxy agents are left alone.
 */
export class KubernetesRequestOptions {
  private agent: https.Agent | undefined;
  private agentKey = '';

  /** Options for one call that must answer within `timeoutMs`. */
  forCall(timeoutMs: number): ConfigurationOptions {
    return {
      middleware: [
        {
          pre: (ctx) => {
            ctx.setSignal(AbortSignal.timeout(timeoutMs));
            const fresh = ctx.getAgent();
            if (fresh instanceof https.Agent && fresh.constructor === https.Agent) ctx.setAgent(this.reuse(fresh));
            return new Observable(Promise.resolve(ctx));
          },
          post: (ctx) => new Observable(Promise.resolve(ctx)),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private reuse(fresh: https.Agent): https.Agent {
    const options = fresh.options as Record<string, unknown>;
    const key = TLS_OPTIONS.map((name) => {
      const v = options[name];
      return Buffer.isBuffer(v) ? v.toString('base64') : JSON.stringify(v ?? null);
    }).join('\n');
    if (!this.agent || key !== this.agentKey) {
      this.agent?.destroy();
      this.agent = new https.Agent({ ...fresh.options, keepAlive: true });
      this.agentKey = key;
    }
    fresh.destroy();
    return this.agent;
  }
}
