/** Public API of the kmq broker client. */
export { KmqClient } from './client.js';
export { Admin } from './admin.js';
export type { CreateTopicOptions, OffsetSpec, PartitionReassignment, ResetOffsetsOptions, ResetStrategyName, TopicDescription } from './admin.js';
export { Producer } from './producer.js';
export type { ProducerRecord, RecordMetadata } from './producer.js';
export type { AcksMode, ProducerOptions } from './producer-options.js';
export type {
  BindingSpec,
  CreateExchangeOptions,
  CreateQueueOptions,
  DeadLetter,
  DeadLetterPosition,
  DeadLetterQuery,
  DeleteQueueOptions,
  DestinationKindName,
  DestinationRef,
  DlqReplayOptions,
  ExchangeInfo,
  ExchangeTypeName,
  QueueConfig,
  QueueDepth,
  QueueInfo,
} from './queue-admin.js';
export { destinationFromWire, exchangeTypeName, formatDestination } from './queue-admin.js';
export { Publisher } from './publisher.js';
export { BrokerProcessedKeyStore } from './processed-keys.js';
export type { KeyClaim } from './processed-keys.js';
export type { ExchangeTarget, PublishMessage, PublishResponse, PublishTarget, PublisherOptions, QueueTarget, RoutedTo } from './publisher.js';
export { Delivery, QueueConsumer, compileQueueConsumerOptions } from './queue-consumer.js';
export type { CompiledQueueConsumerOptions, QueueConsumerOptions, Settlement } from './queue-consumer.js';
export { mergeAckRanges } from './ack-ranges.js';
export type { AckOp } from './ack-ranges.js';
export { Consumer } from './consumer.js';
export type { ConsumerBatch, RunOptions } from './consumer.js';
export type { ConsumerOptions, PartitionAssignment } from './consumer-options.js';
export type { TopicPartition } from './group-member.js';
export { BrokerConnection } from '../protocol/connection.js';
export { NO_BROKER } from '../protocol/well-known.js';
export type { ConnectionOptions, RequestOptions, Response, StreamHandle } from '../protocol/connection.js';
export { DEFAULT_BROKER_PORT, BROKER_ENV, compileClientOptions, defaultBrokers, parseBrokerAddress, formatBrokerAddress } from './options.js';
export type { BrokerAddress, ClientOptions, CompiledClientOptions, RetrySettings } from './options.js';
export { murmur2, partitionForKey } from './murmur2.js';
export type { DecodedRecord, RecordHeader } from '../protocol/record-batch.js';
export { ErrorCode, KmqError } from '../lib/errors.js';
