"""Example app, publishing side: sends --count messages to a topic through the kmq
sidecar's gRPC API and prints where the broker stored each one.

    PYTHONPATH=<stubs folder> python3 publisher.py --topic greetings --count 3 [--sidecar 127.0.0.1:50051]

The stubs (kmq/sidecar/v1/sidecar_pb2*.py) are generated first (into a folder on PYTHONPATH); see README.md.
"""

import argparse
import sys

import grpc

from kmq.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sidecar", default="127.0.0.1:50051", help="the sidecar's gRPC address")
    parser.add_argument("--topic", default="greetings")
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args()

    with grpc.insecure_channel(args.sidecar) as channel:
        sidecar = sidecar_pb2_grpc.SidecarStub(channel)
        for i in range(1, args.count + 1):
            payload = f"hello {i} from python"
            try:
                res = sidecar.Publish(
                    sidecar_pb2.PublishRequest(
                        destination=sidecar_pb2.Destination(topic=args.topic),
                        # One key for all: one partition, so the consumer sees them in order.
                        key=b"example",
                        payload=payload.encode(),
                        headers={"content-type": "text/plain"},
                    ),
                    timeout=10,
                )
            except grpc.RpcError as err:
                print(f"publish failed: {err.code().name}: {err.details()}", file=sys.stderr)
                return 1
            at = res.placements[0]
            print(
                f'published "{payload}" to {args.topic} partition {at.partition} offset {at.offset}'
                f" (idempotency key {res.idempotency_key})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
