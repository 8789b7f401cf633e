import type { Server } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { fileDescriptor as healthDescriptor } from '../gen/grpc/health/v1/health.descriptor.js';
import { fileDescriptor as sidecarDescriptor } from '../gen/kmq/sidecar/v1/sidecar.descriptor.js';

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/**
 * Adds gRPC server reflection (grpc.reflection.v1 and v1alpha) describing the
 * Sidecar and AppCallback services and grpc.health.v1, so `grpcurl -plaintext
 * localhost:PORT list` and `describe` work without .proto files. The descriptors
 * are the compiler's own (generated into sidecar/gen), comments included.
 */
export function addReflection(server: Server): void {
  // ReflectionService reads only each entry's fileDescriptorProtos.
  const pkg = {
    'kmq.sidecar.v1': { format: 'Protocol Buffer 3 FileDescriptorProto', fileDescriptorProtos: [sidecarDescriptor] },
    'grpc.health.v1': { format: 'Protocol Buffer 3 FileDescriptorProto', fileDescriptorProtos: [healthDescriptor] },
  } as unknown as PackageDefinition;
  new ReflectionService(pkg).addToServer(server);
}
