// The launcher lives in testkit/ so that bench/ can use it too.
export * from '../../testkit/control-plane.js';
