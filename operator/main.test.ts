import { describe, expect, it } from 'vitest';
import { brokerAddressResolver, parseOperatorArgs } from './main.js';
import { compileOperatorOptions } from './options.js';

describe('kmq operator flags', () => {
  it('parses the chart\'s arguments into settings', () => {
    const flags = parseOperatorArgs([
      '--namespace=shop',
      '--health-port=8081',
      '--webhook-port=9443',
      '--webhook-service=kmq-webhook',
      '--webhook-secret=kmq-webhook-tls',
      '--webhook-configuration=kmq-sidecar-injector',
      '--leader-elect=true',
      '--lease-name=kmq-operator',
      '--broker-image=ghcr.io/kmq-dev/kmq:0.1.0',
      '--sidecar-image=ghcr.io/kmq-dev/kmq:0.1.0',
      '--image-pull-policy=IfNotPresent',
    ]);
    expect(flags).toEqual({
      namespace: 'shop',
      healthPort: '8081',
      webhookPort: '9443',
      webhookService: 'kmq-webhook',
      webhookSecret: 'kmq-webhook-tls',
      webhookConfiguration: 'kmq-sidecar-injector',
      leaderElect: 'true',
      leaseName: 'kmq-operator',
      brokerImage: 'ghcr.io/kmq-dev/kmq:0.1.0',
      sidecarImage: 'ghcr.io/kmq-dev/kmq:0.1.0',
      imagePullPolicy: 'IfNotPresent',
    });
    expect(() => compileOperatorOptions(flags, { POD_NAMESPACE: 'kmq-system' })).not.toThrow();
  });

  it('refuses unknown flags and takes --no-webhook', () => {
    expect(() => parseOperatorArgs(['--nope'])).toThrow(/nope/);
    expect(parseOperatorArgs(['--no-webhook'])).toEqual({ webhook: false });
  });

  it('reaches brokers through the client Service unless overridden for tests and local runs', () => {
    const ref = { namespace: 'shop', name: 'main' };
    expect(brokerAddressResolver(compileOperatorOptions({ webhook: false, leaderElect: false }, {}))(ref)).toBe('main-client.shop.svc:9092');
    expect(brokerAddressResolver(compileOperatorOptions({ webhook: false, leaderElect: false, brokerAddressOverride: '127.0.0.1:4000' }, {}))(ref)).toBe('127.0.0.1:4000');
  });
});
