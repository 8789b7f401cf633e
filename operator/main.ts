#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { KmqError } from '../lib/errors.js';
import { HealthServer } from '../lib/health-server.js';
import { createLogger } from '../lib/logger.js';
import type { Logger } from '../lib/logger.js';
import { brokerClusterController } from './controllers/broker-cluster.js';
import { BrokerClientPool, serviceAddress } from './controllers/common/index.js';
import type { BrokerAddressResolver, BrokerControllerOptions } from './controllers/common/index.js';
import { dlqPolicyController } from './controllers/dlq-policy.js';
import { exchangeController } from './controllers/exchange.js';
import { queueController } from './controllers/queue.js';
import { subscriptionController } from './controllers/subscription.js';
import { topicController } from './controllers/topic.js';
import { compileOperatorOptions } from './options.js';
import type { CompiledOperatorOptions, OperatorOptions } from './options.js';
import { OperatorProbe } from './probe.js';
import type { Controller } from './runtime/controller.js';
import { Manager } from './runtime/manager.js';
import type { ManagerExit } from './runtime/manager.js';
import { SidecarInjector } from './webhook/injector.js';

/** The operator's version: the kmq.dev/injected annotation's value. */
export const OPERATOR_VERSION = '0.1.0';

/** Usage of `kmq operator` (and of `node dist/operator/main.js`). */
export const OPERATOR_USAGE = `Usage: kmq operator [options]

Runs the kmq operator: the reconcilers of the kmq.dev custom resources, with leader
election, and the sidecar-injection webhook. Kubernetes credentials: in-cluster, or
$KUBECONFIG / ~/.kube/config.

Options:
  --namespace <ns>                 watch one namespace (default: every namespace)
  --leader-elect <bool>            run controllers only while holding the Lease (default true)
  --leader-elect-namespace <ns>    the Lease's namespace (default $POD_NAMESPACE)
  --lease-name <name>              the Lease's name (default kmq-operator)
  --lease-duration <d>             (default 15s)
  --renew-deadline <d>             (default 10s)
  --retry-period <d>               (default 2s)
  --identity <name>                this replica in the Lease (default hostname-random)
  --health-host <addr>             address of /healthz /readyz /metrics (default 0.0.0.0)
  --health-port <n>                port of /healthz /readyz /metrics, 0 for any (default 8081)
  --no-webhook                     do not serve the sidecar-injection webhook
  --webhook-host <addr>            (default 0.0.0.0)
  --webhook-port <n>               HTTPS port of the webhook, 0 for any (default 9443)
  --webhook-service <name>         the webhook's Service (default kmq-webhook)
  --webhook-secret <name>          the Secret of its certificates (default kmq-webhook-tls)
  --webhook-configuration <name>   the MutatingWebhookConfiguration (default kmq-sidecar-injector)
  --webhook-extra-sans <list>      more names/addresses for its certificate, comma-separated
  --broker-image <ref>             broker image of BrokerClusters that name none
  --sidecar-image <ref>            sidecar image injected when the BrokerCluster names none
  --image-pull-policy <p>          Always | IfNotPresent | Never (default IfNotPresent)
  --drain-timeout <d>              how long a stop waits for reconciles (default 30s)
  --broker-address-override <h:p> tests and local runs only: reach every BrokerCluster's
                                   brokers at this address instead of its client Service
  -h, --help
`;

/** Flags → OperatorOptions (unchecked: compileOperatorOptions checks them). */
export function parseOperatorArgs(argv: string[]): OperatorOptions & { help?: boolean } {
  const str = { type: 'string' } as const;
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      namespace: str,
      'leader-elect': str,
      'leader-elect-namespace': str,
      'lease-name': str,
      'lease-duration': str,
      'renew-deadline': str,
      'retry-period': str,
      identity: str,
      'health-host': str,
      'health-port': str,
      'no-webhook': { type: 'boolean' },
      'webhook-host': str,
      'webhook-port': str,
      'webhook-service': str,
      'webhook-secret': str,
      'webhook-configuration': str,
      'webhook-extra-sans': str,
      'broker-image': str,
      'sidecar-image': str,
      'image-pull-policy': str,
      'drain-timeout': str,
      'broker-address-override': str,
      help: { type: 'boolean', short: 'h' },
    },
  });
  const o: OperatorOptions & { help?: boolean } = {
    namespace: values.namespace,
    leaderElect: values['leader-elect'],
    leaderElectNamespace: values['leader-elect-namespace'],
    leaseName: values['lease-name'],
    leaseDuration: values['lease-duration'],
    renewDeadline: values['renew-deadline'],
    retryPeriod: values['retry-period'],
    identity: values.identity,
    healthHost: values['health-host'],
    healthPort: values['health-port'],
    webhook: values['no-webhook'] === true ? false : undefined,
    webhookHost: values['webhook-host'],
    webhookPort: values['webhook-port'],
    webhookService: values['webhook-service'],
    webhookSecret: values['webhook-secret'],
    webhookConfiguration: values['webhook-configuration'],
    webhookExtraSans: values['webhook-extra-sans'],
    brokerImage: values['broker-image'],
    sidecarImage: values['sidecar-image'],
    imagePullPolicy: values['image-pull-policy'],
    drainTimeout: values['drain-timeout'],
    brokerAddressOverride: values['broker-address-override'],
    help: values.help,
  };
  for (const k of Object.keys(o) as Array<keyof typeof o>) if (o[k] === undefined) delete o[k];
  return o;
}

/** What runOperator may be given instead of its defaults (tests). */
export interface OperatorDeps {
  kubeConfig?: KubeConfig;
  logger?: Logger;
}

/** Everything a controller factory needs. */
export interface OperatorContext {
  kubeConfig: KubeConfig;
  manager: Manager;
  options: CompiledOperatorOptions;
  probe: OperatorProbe;
  /** The broker clients, one per BrokerCluster, shared by the broker-backed controllers. */
  clients: BrokerClientPool;
  logger: Logger;
}

/**
 * Every controller the operator runs, one per kind, on the manager's shared informers:
 * BrokerCluster, Topic, Queue, Exchange, Subscription and DLQPolicy.
 */
export function operatorControllers(ctx: OperatorContext): Controller[] {
  const { kubeConfig, manager, options, probe, logger, clients } = ctx;
  const namespace = options.namespace;
  const log = (controller: string): Logger => logger.child({ controller });
  const broker = (controller: string): BrokerControllerOptions => ({ kubeConfig, manager, clients, probe, logger: log(controller), ...(namespace === undefined ? {} : { namespace }) });
  return [
    brokerClusterController({ kubeConfig, manager, namespace, defaults: { image: options.brokerImage, imagePullPolicy: options.imagePullPolicy }, probe, logger: log('broker-cluster') }),
    topicController(broker('topic')),
    queueController(broker('queue')),
    exchangeController(broker('exchange')),
    subscriptionController(broker('subscription')),
    dlqPolicyController({ kubeConfig, manager, namespace, probe, logger: log('dlq-policy') }),
  ];
}

/** How the operator reaches a BrokerCluster's brokers: its client Service, or the override of tests and local runs. */
export function brokerAddressResolver(options: CompiledOperatorOptions): BrokerAddressResolver {
  const override = options.brokerAddressOverride;
  return override === undefined ? serviceAddress : () => override;
}

/**
 * Runs the operator until SIGTERM / SIGINT (resolves 0) or until it loses its Lease
 * (resolves 1: the process should exit and be restarted, as controller-runtime's does).
 */
export async function runOperator(options: CompiledOperatorOptions, deps: OperatorDeps = {}): Promise<number> {
  const logger = deps.logger ?? createLogger({ component: 'operator' });
  const kubeConfig = deps.kubeConfig ?? defaultKubeConfig();
  const probe = new OperatorProbe();
  const le = options.leaderElection;
  const manager = new Manager({
    kubeConfig,
    handleSignals: true,
    drainTimeoutMs: options.drainTimeoutMs,
    ...(le === undefined ? {} : { leaderElection: { namespace: le.namespace, name: le.name, leaseDurationMs: le.leaseDurationMs, renewDeadlineMs: le.renewDeadlineMs, retryPeriodMs: le.retryPeriodMs, ...(le.identity === undefined ? {} : { identity: le.identity }) } }),
    onStartedLeading: () => {
      probe.leadershipChanged(true);
      logger.info({ lease: le?.name, identity: le?.identity }, 'Started leading');
    },
    onStoppedLeading: () => {
      probe.leadershipChanged(false);
      logger.info({ lease: le?.name }, 'Stopped leading');
    },
    logger,
  });
  const clients = new BrokerClientPool({ resolveAddress: brokerAddressResolver(options), logger });
  if (options.brokerAddressOverride !== undefined) logger.warn({ broker: options.brokerAddressOverride }, 'Every BrokerCluster is reached at the broker address override (tests and local runs only)');
  const controllers = operatorControllers({ kubeConfig, manager, options, probe, clients, logger });
  for (const c of controllers) {
    manager.add(c);
    probe.controllerAdded(c);
  }

  let ready = false;
  const health = new HealthServer(probe.registry, () => ready);
  const healthPort = await health.listen(options.health.host, options.health.port);
  let injector: SidecarInjector | undefined;
  let exit: ManagerExit = 'stopped';
  try {
    if (options.webhook) {
      const w = options.webhook;
      injector = await SidecarInjector.start({
        kubeConfig,
        tls: { namespace: w.namespace, serviceName: w.serviceName, secretName: w.secretName, extraSans: w.extraSans },
        webhookConfigurationName: w.configurationName,
        server: { host: w.host, port: w.port },
        defaultImage: options.sidecarImage,
        version: OPERATOR_VERSION,
        log: logger.child({ part: 'webhook' }),
      });
    }
    const done = manager.start();
    ready = true;
    logger.info(
      { healthPort, webhookPort: injector?.port, namespace: options.namespace ?? '*', leaderElection: le === undefined ? false : `${le.namespace}/${le.name}`, controllers: controllers.map((c) => c.name) },
      'Operator started',
    );
    exit = await done;
  } finally {
    ready = false;
    await injector?.stop();
    await clients.close();
    await health.close();
  }
  logger.info({ why: exit }, 'Operator stopped');
  return exit === 'stopped' ? 0 : 1;
}

/** In-cluster credentials when running in a pod, else $KUBECONFIG or ~/.kube/config. */
function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

/** `node dist/operator/main.js [options]`: parses, compiles and runs; exits with its code. */
export async function operatorMain(argv: string[]): Promise<number> {
  let options: CompiledOperatorOptions;
  try {
    const flags = parseOperatorArgs(argv);
    if (flags.help === true) {
      process.stdout.write(OPERATOR_USAGE);
      return 0;
    }
    delete flags.help;
    options = compileOperatorOptions(flags);
  } catch (err) {
    process.stderr.write(`kmq operator: ${err instanceof Error ? err.message : String(err)}\n${err instanceof KmqError ? '' : OPERATOR_USAGE}`);
    return 2;
  }
  return runOperator(options);
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  operatorMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`kmq operator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
