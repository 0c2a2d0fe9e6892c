"""Reads a RabbitMQ stream over AMQP 0-9-1 with kombu, as any AMQP consumer can.

A stream queue is consumed with `x-queue-type: stream` on the queue declaration, a prefetch
(basic.qos) and the `x-stream-offset` consumer argument ("first" here: from the start). Prints
one line per message: the body kombu decoded (the packet JSON). Stops after COUNT messages;
exits 1 when fewer arrive within the timeout.

Usage: consume_stream.py --url amqp://guest:guest@127.0.0.1:5672// --stream S --count N
                         [--timeout SECONDS]
"""

import argparse
import sys


def main():
    from kombu import Connection, Queue

    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--stream", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()

    queue = Queue(
        args.stream,
        durable=True,
        # The stream exists (the publisher made it): declaring it again would have to repeat
        # every argument it was made with (x-queue-leader-locator, retention).
        no_declare=True,
        queue_arguments={"x-queue-type": "stream"},
        consumer_arguments={"x-stream-offset": "first"},
    )
    got = []
    with Connection(args.url) as conn:
        def on_message(body, message):
            got.append(message.body)
            # Streams need manual acks (they move the credit window on, nothing is removed).
            message.ack()

        channel = conn.channel()
        # A stream consumer must have a prefetch before basic.consume (RabbitMQ refuses it
        # otherwise).
        channel.basic_qos(0, 1000, False)
        with conn.Consumer([queue], channel=channel, callbacks=[on_message], accept=["json"]):
            import socket
            import time

            deadline = time.monotonic() + args.timeout
            while len(got) < args.count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    conn.drain_events(timeout=min(left, 1.0))
                except socket.timeout:
                    pass
    out = sys.stdout.buffer
    for body in got[: args.count]:
        out.write(body if isinstance(body, bytes) else body.encode("utf-8"))
        out.write(b"\n")
    return 0 if len(got) >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
