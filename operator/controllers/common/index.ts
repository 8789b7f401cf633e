export * from './broker-clients.js';
export * from './broker-cluster-ref.js';
export * from './broker-errors.js';
export * from './broker-object-reconciler.js';
export * from './finalizer.js';
export * from './kube.js';
export * from './naming.js';
export * from './status-writer.js';
