// The launcher lives in testkit/ so that bench/ can use it too.
export * from '../../testkit/etcd-process.js';
