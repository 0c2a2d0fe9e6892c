"""Reads messages netpipe-fast published to RabbitMQ, the way the original's consumers do.

A kombu SimpleQueue (kombu's AMQP transport, py-amqp underneath) on the queue, bound to the
exchange and routing key given, with the exchange type the publisher declares (topic when a
routing key is set, else direct), takes COUNT messages, acks them, and prints one JSON line
per message: the body as received, the payload kombu decoded from it, content type and
encoding, delivery info and properties. Then one line {"left": N}: the messages still in the
queue (a passive declare). Exits 1 when fewer than COUNT messages arrive within the timeout;
with --drain, a wait that times out ends the reading instead (for a queue filled beforehand).

--delete removes the queue and the exchange instead (test clean-up); missing ones are fine.

Usage: consume_amqp.py --url amqp://guest:guest@127.0.0.1:5672// --queue Q --exchange E
                       --routing-key R --count N [--timeout SECONDS] [--drain] | --delete
"""

import argparse
import json
import sys


def declare_args(args):
    from kombu import Exchange, Queue

    exchange_type = "topic" if args.routing_key else "direct"
    exchange = Exchange(args.exchange, type=exchange_type, durable=True)
    queue = Queue(args.queue, exchange, routing_key=args.routing_key, durable=True)
    return exchange, queue


def consume(args):
    from kombu import Connection

    _, queue = declare_args(args)
    with Connection(args.url) as conn:
        sq = conn.SimpleQueue(queue)
        try:
            for _ in range(args.count):
                try:
                    msg = sq.get(block=True, timeout=args.timeout)
                except sq.Empty:
                    if args.drain:
                        break
                    return 1
                record = {
                    "body": msg.body.decode("utf-8")
                    if isinstance(msg.body, bytes)
                    else msg.body,
                    "payload": msg.decode(),
                    "content_type": msg.content_type,
                    "content_encoding": msg.content_encoding,
                    "delivery_info": {
                        "exchange": msg.delivery_info.get("exchange"),
                        "routing_key": msg.delivery_info.get("routing_key"),
                        "redelivered": msg.delivery_info.get("redelivered"),
                    },
                    "properties": {
                        k: msg.properties.get(k) for k in ("delivery_mode", "priority")
                    },
                    "headers": msg.headers,
                }
                msg.ack()
                print(json.dumps(record))
        finally:
            sq.close()
        channel = conn.channel()
        _, left, _ = queue.bind(channel).queue_declare(passive=True)
        print(json.dumps({"left": left}))
    return 0


def delete(args):
    from kombu import Connection

    exchange, queue = declare_args(args)
    with Connection(args.url) as conn:
        for entity in (queue, exchange):
            # A failed delete closes the channel: one channel per entity.
            channel = conn.channel()
            try:
                entity.bind(channel).delete()
            except Exception as e:  # noqa: BLE001 - clean-up goes on regardless
                print(f"delete {entity.name}: {e}", file=sys.stderr)
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001
                    pass
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--exchange", required=True)
    p.add_argument("--routing-key", default="")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--delete", action="store_true")
    p.add_argument("--drain", action="store_true")
    args = p.parse_args()
    if args.delete:
        return delete(args)
    return consume(args)


if __name__ == "__main__":
    sys.exit(main())
