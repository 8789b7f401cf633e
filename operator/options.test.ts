import { describe, expect, it } from 'vitest';
import { KmqError } from '../lib/errors.js';
import { DEFAULT_BROKER_IMAGE } from './builders/meta.js';
import { compileOperatorOptions } from './options.js';
import type { OperatorOptions } from './options.js';

const ENV = { POD_NAMESPACE: 'kmq-system' };

function error(o: OperatorOptions, env: NodeJS.ProcessEnv = ENV): KmqError {
  try {
    compileOperatorOptions(o, env);
  } catch (err) {
    if (err instanceof KmqError) return err;
    throw err;
  }
  throw new Error('compiled');
}

describe('compileOperatorOptions', () => {
  it('fills in every default', () => {
    expect(compileOperatorOptions({}, ENV)).toEqual({
      namespace: undefined,
      leaderElection: { namespace: 'kmq-system', name: 'kmq-operator', identity: undefined, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      health: { host: '0.0.0.0', port: 8081 },
      webhook: { host: '0.0.0.0', port: 9443, namespace: 'kmq-system', serviceName: 'kmq-webhook', secretName: 'kmq-webhook-tls', configurationName: 'kmq-sidecar-injector', extraSans: [] },
      brokerImage: DEFAULT_BROKER_IMAGE,
      sidecarImage: DEFAULT_BROKER_IMAGE,
      imagePullPolicy: 'IfNotPresent',
      brokerAddressOverride: undefined,
      drainTimeoutMs: 30_000,
    });
  });

  it('takes the chart\'s flags', () => {
    const o = compileOperatorOptions(
      { namespace: 'shop', leaderElect: 'false', healthPort: '8082', webhookPort: '0', webhookService: 'kmq-webhook', webhookSecret: 'kmq-tls', webhookConfiguration: 'kmq-inject', brokerImage: 'r/kmq:1', sidecarImage: 'r/kmq:1', imagePullPolicy: 'Always', webhookExtraSans: '127.0.0.1, localhost' },
      ENV,
    );
    expect(o.namespace).toBe('shop');
    expect(o.leaderElection).toBeUndefined();
    expect(o.health.port).toBe(8082);
    expect(o.webhook).toMatchObject({ port: 0, secretName: 'kmq-tls', configurationName: 'kmq-inject', extraSans: ['127.0.0.1', 'localhost'] });
    expect(o.imagePullPolicy).toBe('Always');
    expect(compileOperatorOptions({ webhook: false, leaderElectNamespace: 'ops', brokerAddressOverride: '127.0.0.1:9092' }, {})).toMatchObject({ webhook: undefined, leaderElection: { namespace: 'ops' }, brokerAddressOverride: '127.0.0.1:9092' });
  });

  it('an invalid setting stops start-up with a message that names it', () => {
    const cases: Array<[OperatorOptions, string, NodeJS.ProcessEnv?]> = [
      [{ webhook: false }, 'leader-elect-namespace', {}],
      [{ leaderElect: false }, 'webhook', {}],
      [{ leaderElect: 'yes' }, 'leader-elect'],
      [{ namespace: 'Shop_1' }, 'namespace'],
      [{ healthPort: '70000' }, 'health-port'],
      [{ webhookPort: 'https' }, 'webhook-port'],
      [{ leaseDuration: '5s', renewDeadline: '5s' }, 'renew-deadline'],
      [{ retryPeriod: '20s' }, 'retry-period'],
      [{ leaseDuration: 'long' }, 'lease-duration'],
      [{ brokerAddressOverride: '127.0.0.1' }, 'broker-address-override'],
      [{ imagePullPolicy: 'Sometimes' }, 'image-pull-policy'],
      [{ brokerImage: 'has space' }, 'broker-image'],
      [{ leaseName: 'Bad Name' }, 'lease-name'],
      [{ identity: ' ' }, 'identity'],
    ];
    for (const [o, setting, env] of cases) {
      const err = error(o, env ?? ENV);
      expect(err.context.setting, JSON.stringify(o)).toBe(setting);
      expect(err.message).toContain(`Operator setting ${setting}:`);
      expect(err.retriable).toBe(false);
    }
  });
});
