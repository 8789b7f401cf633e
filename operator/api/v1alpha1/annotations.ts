/** The label that opts a pod into sidecar injection. */
export const INJECT_LABEL = 'kmq.dev/inject';
/** Comma-separated names of the Subscriptions (same namespace) the sidecar serves to the app. */
export const SUBSCRIPTIONS_ANNOTATION = 'kmq.dev/subscriptions';
/** The app's AppCallback gRPC port, for push subscriptions. */
export const APP_PORT_ANNOTATION = 'kmq.dev/app-port';
