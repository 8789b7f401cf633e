"""Example app, consuming side: opens a Consume stream on a sidecar subscription,
prints and acknowledges each delivery, and stops after --count messages (or fails
after --timeout seconds without them).

    PYTHONPATH=<stubs folder> python3 consumer.py --subscription greeter --count 3 [--sidecar 127.0.0.1:50051]

The stubs (kmq/sidecar/v1/sidecar_pb2*.py) are generated first (into a folder on PYTHONPATH); see README.md.
"""

import argparse
import queue
import sys

import grpc

from kmq.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sidecar", default="127.0.0.1:50051", help="the sidecar's gRPC address")
    parser.add_argument("--subscription", default="greeter", help="a subscription configured in the sidecar")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for --count messages")
    args = parser.parse_args()

    # Consume is a bidirectional stream: requests (start, then one ack per delivery) are
    # fed from this queue; None ends our side of the stream.
    outbox: "queue.Queue[sidecar_pb2.ConsumeRequest | None]" = queue.Queue()

    def requests():
        while True:
            req = outbox.get()
            if req is None:
                return
            yield req

    outbox.put(sidecar_pb2.ConsumeRequest(start=sidecar_pb2.ConsumeStart(subscription=args.subscription)))
    received = 0
    with grpc.insecure_channel(args.sidecar) as channel:
        sidecar = sidecar_pb2_grpc.SidecarStub(channel)
        try:
            for res in sidecar.Consume(requests(), timeout=args.timeout):
                kind = res.WhichOneof("kind")
                if kind == "started":
                    print(f"consuming {res.started.subscription} (max in flight {res.started.max_in_flight})", flush=True)
                elif kind == "delivery":
                    d = res.delivery
                    source = d.source.topic or d.source.queue
                    print(
                        f'received "{d.payload.decode()}" from {source} partition {d.source.partition}'
                        f" offset {d.source.offset} attempt {d.attempt}",
                        flush=True,
                    )
                    # Settle every delivery: ack when handled (retry / dead_letter otherwise).
                    outbox.put(sidecar_pb2.ConsumeRequest(ack=sidecar_pb2.Ack(delivery_id=d.delivery_id)))
                    received += 1
                    if received == args.count:
                        # Ending our side lets the sidecar apply the acks sent, then close with OK.
                        outbox.put(None)
        except grpc.RpcError as err:
            outbox.put(None)
            print(f"Consume ended with {err.code().name}: {err.details()} after {received} of {args.count} messages", file=sys.stderr)
            return 1
    print(f"done: {received} messages acknowledged", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
