import * as pb from './gen/kmq/broker/v1/broker.js';

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
