import { create, toBinary } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { Server } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { service as healthService } from 'grpc-health-check';
import { protoMetadata } from '../gen/kmq/sidecar/v1/sidecar.js';

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/** sidecar.proto's file descriptor (with its comments), as generated into sidecar/gen. */
export function sidecarFileDescriptor(): Buffer {
  // ts-proto writes an unset `edition` as 0; a proto3 file carries none.
  const { edition: _edition, ...fd } = protoMetadata.fileDescriptor as unknown as Record<string, unknown>;
  return Buffer.from(toBinary(FileDescriptorProtoSchema, create(FileDescriptorProtoSchema, fd as MessageInitShape<typeof FileDescriptorProtoSchema>)));
}

/**
 * Adds gRPC server reflection (grpc.reflection.v1 and v1alpha) describing the
 * Sidecar and AppCallback services and grpc.health.v1, so `grpcurl -plaintext
 * localhost:PORT list` and `describe` work without .proto files.
 */
export function addReflection(server: Server): void {
  const pkg = {
    'kmq.sidecar.v1': { format: 'Protocol Buffer 3 FileDescriptorProto', fileDescriptorProtos: [sidecarFileDescriptor()] },
    // grpc-health-check loads health.proto with proto-loader: its message definitions carry the descriptor.
    'grpc.health.v1': healthService.Check!.requestType,
  } as unknown as PackageDefinition;
  new ReflectionService(pkg).addToServer(server);
}
