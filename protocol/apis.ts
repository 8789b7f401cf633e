import * as pb from './gen/kmq/broker/v1/broker.js';
import * as q from './gen/kmq/broker/v1/queues.js';
import * as idem from './gen/kmq/broker/v1/idempotency.js';
import * as repl from './gen/kmq/broker/v1/replication.js';
import * as cl from './gen/kmq/broker/v1/cluster.js';

/** A protobuf message codec as ts-proto generates it. */
export interface MessageCodec<T> {
  encode(message: T, writer?: unknown): { finish(): Uint8Array };
  decode(input: Uint8Array, length?: number): T;
}

/**
 * Api keys of the broker protocol. Numbers are part of the wire format: never
 * renumber, only append. Each api has a version range the broker accepts.
 */
export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  InitProducerId: 4,
  CreateTopic: 10,
  DeleteTopic: 11,
  DescribeTopic: 12,
  AlterTopicConfig: 13,
  JoinGroup: 20,
  Heartbeat: 21,
  LeaveGroup: 22,
  OffsetCommit: 23,
  OffsetFetch: 24,
  ListGroups: 25,
  DescribeGroup: 26,
  ResetOffsets: 27,
  DeleteGroup: 28,
  CreateQueue: 30,
  DeleteQueue: 31,
  DescribeQueue: 32,
  ListQueues: 33,
  PurgeQueue: 34,
  ShareFetch: 40,
  ShareSubscribe: 41,
  ShareAck: 42,
  ShareLeave: 43,
  CreateExchange: 50,
  DeleteExchange: 51,
  ListExchanges: 52,
  Bind: 53,
  Unbind: 54,
  Publish: 55,
  DlqPeek: 60,
  DlqReplay: 61,
  DlqPurge: 62,
  ClaimKey: 70,
  CompleteKey: 71,
  ReleaseKey: 72,
  ReplicaFetch: 80,
  EpochEndOffset: 81,
  Rebalance: 90,
  DecommissionBroker: 91,
  ListReassignments: 92,
} as const;
export type ApiKey = (typeof ApiKey)[keyof typeof ApiKey];

export interface ApiSpec<Req, Res> {
  readonly key: ApiKey;
  readonly name: string;
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly request: MessageCodec<Req>;
  readonly response: MessageCodec<Res>;
}

function api<Req, Res>(key: ApiKey, name: string, request: MessageCodec<Req>, response: MessageCodec<Res>): ApiSpec<Req, Res> {
  return { key, name, minVersion: 0, maxVersion: 0, request, response };
}

export const Apis = {
  Produce: api(ApiKey.Produce, 'Produce', pb.ProduceRequest, pb.ProduceResponse),
  Fetch: api(ApiKey.Fetch, 'Fetch', pb.FetchRequest, pb.FetchResponse),
  ListOffsets: api(ApiKey.ListOffsets, 'ListOffsets', pb.ListOffsetsRequest, pb.ListOffsetsResponse),
  Metadata: api(ApiKey.Metadata, 'Metadata', pb.MetadataRequest, pb.MetadataResponse),
  InitProducerId: api(ApiKey.InitProducerId, 'InitProducerId', pb.InitProducerIdRequest, pb.InitProducerIdResponse),
  CreateTopic: api(ApiKey.CreateTopic, 'CreateTopic', pb.CreateTopicRequest, pb.CreateTopicResponse),
  DeleteTopic: api(ApiKey.DeleteTopic, 'DeleteTopic', pb.DeleteTopicRequest, pb.DeleteTopicResponse),
  DescribeTopic: api(ApiKey.DescribeTopic, 'DescribeTopic', pb.DescribeTopicRequest, pb.DescribeTopicResponse),
  AlterTopicConfig: api(ApiKey.AlterTopicConfig, 'AlterTopicConfig', pb.AlterTopicConfigRequest, pb.AlterTopicConfigResponse),
  JoinGroup: api(ApiKey.JoinGroup, 'JoinGroup', pb.JoinGroupRequest, pb.JoinGroupResponse),
  Heartbeat: api(ApiKey.Heartbeat, 'Heartbeat', pb.HeartbeatRequest, pb.HeartbeatResponse),
  LeaveGroup: api(ApiKey.LeaveGroup, 'LeaveGroup', pb.LeaveGroupRequest, pb.LeaveGroupResponse),
  OffsetCommit: api(ApiKey.OffsetCommit, 'OffsetCommit', pb.OffsetCommitRequest, pb.OffsetCommitResponse),
  OffsetFetch: api(ApiKey.OffsetFetch, 'OffsetFetch', pb.OffsetFetchRequest, pb.OffsetFetchResponse),
  ListGroups: api(ApiKey.ListGroups, 'ListGroups', pb.ListGroupsRequest, pb.ListGroupsResponse),
  DescribeGroup: api(ApiKey.DescribeGroup, 'DescribeGroup', pb.DescribeGroupRequest, pb.DescribeGroupResponse),
  ResetOffsets: api(ApiKey.ResetOffsets, 'ResetOffsets', pb.ResetOffsetsRequest, pb.ResetOffsetsResponse),
  DeleteGroup: api(ApiKey.DeleteGroup, 'DeleteGroup', pb.DeleteGroupRequest, pb.DeleteGroupResponse),
  CreateQueue: api(ApiKey.CreateQueue, 'CreateQueue', q.CreateQueueRequest, q.CreateQueueResponse),
  DeleteQueue: api(ApiKey.DeleteQueue, 'DeleteQueue', q.DeleteQueueRequest, q.DeleteQueueResponse),
  DescribeQueue: api(ApiKey.DescribeQueue, 'DescribeQueue', q.DescribeQueueRequest, q.DescribeQueueResponse),
  ListQueues: api(ApiKey.ListQueues, 'ListQueues', q.ListQueuesRequest, q.ListQueuesResponse),
  PurgeQueue: api(ApiKey.PurgeQueue, 'PurgeQueue', q.PurgeQueueRequest, q.PurgeQueueResponse),
  ShareFetch: api(ApiKey.ShareFetch, 'ShareFetch', q.ShareFetchRequest, q.ShareFetchResponse),
  ShareSubscribe: api(ApiKey.ShareSubscribe, 'ShareSubscribe', q.ShareSubscribeRequest, q.ShareFetchResponse),
  ShareAck: api(ApiKey.ShareAck, 'ShareAck', q.ShareAckRequest, q.ShareAckResponse),
  ShareLeave: api(ApiKey.ShareLeave, 'ShareLeave', q.ShareLeaveRequest, q.ShareLeaveResponse),
  CreateExchange: api(ApiKey.CreateExchange, 'CreateExchange', q.CreateExchangeRequest, q.CreateExchangeResponse),
  DeleteExchange: api(ApiKey.DeleteExchange, 'DeleteExchange', q.DeleteExchangeRequest, q.DeleteExchangeResponse),
  ListExchanges: api(ApiKey.ListExchanges, 'ListExchanges', q.ListExchangesRequest, q.ListExchangesResponse),
  Bind: api(ApiKey.Bind, 'Bind', q.BindRequest, q.BindResponse),
  Unbind: api(ApiKey.Unbind, 'Unbind', q.UnbindRequest, q.UnbindResponse),
  Publish: api(ApiKey.Publish, 'Publish', q.PublishRequest, q.PublishResponse),
  DlqPeek: api(ApiKey.DlqPeek, 'DlqPeek', q.DlqPeekRequest, q.DlqPeekResponse),
  DlqReplay: api(ApiKey.DlqReplay, 'DlqReplay', q.DlqReplayRequest, q.DlqReplayResponse),
  DlqPurge: api(ApiKey.DlqPurge, 'DlqPurge', q.DlqPurgeRequest, q.DlqPurgeResponse),
  ClaimKey: api(ApiKey.ClaimKey, 'ClaimKey', idem.ClaimKeyRequest, idem.ClaimKeyResponse),
  CompleteKey: api(ApiKey.CompleteKey, 'CompleteKey', idem.CompleteKeyRequest, idem.CompleteKeyResponse),
  ReleaseKey: api(ApiKey.ReleaseKey, 'ReleaseKey', idem.ReleaseKeyRequest, idem.ReleaseKeyResponse),
  ReplicaFetch: api(ApiKey.ReplicaFetch, 'ReplicaFetch', repl.ReplicaFetchRequest, repl.ReplicaFetchResponse),
  EpochEndOffset: api(ApiKey.EpochEndOffset, 'EpochEndOffset', repl.EpochEndOffsetRequest, repl.EpochEndOffsetResponse),
  Rebalance: api(ApiKey.Rebalance, 'Rebalance', cl.RebalanceRequest, cl.RebalanceResponse),
  DecommissionBroker: api(ApiKey.DecommissionBroker, 'DecommissionBroker', cl.DecommissionBrokerRequest, cl.DecommissionBrokerResponse),
  ListReassignments: api(ApiKey.ListReassignments, 'ListReassignments', cl.ListReassignmentsRequest, cl.ListReassignmentsResponse),
} as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyApiSpec = ApiSpec<any, any>;

const byKey = new Map<number, AnyApiSpec>(Object.values(Apis).map((a) => [a.key, a as AnyApiSpec]));

/** The api for a key, or undefined when the key is unknown. */
export function apiByKey(key: number): AnyApiSpec | undefined {
  return byKey.get(key);
}

export function isSupported(key: number, version: number): boolean {
  const spec = byKey.get(key);
  return spec !== undefined && version >= spec.minVersion && version <= spec.maxVersion;
}
