"""Reads messages netpipe-fast published to a Redis list, the way the original's consumers do.

kombu mode: a kombu SimpleQueue on the Redis transport, bound to the exchange and routing key
given, takes COUNT messages, acks them, and prints one JSON line per message: the decoded
payload (kombu's own base64 and JSON decoding), content type and encoding, delivery info and
properties. raw mode: redis-py BRPOPs COUNT elements and prints each parsed as JSON.
Exits 1 when fewer than COUNT messages arrive within the timeout.

Usage: consume.py --url redis://127.0.0.1:6379/12 --queue Q --exchange E --routing-key R
                  --mode kombu|raw --count N [--timeout SECONDS]
"""

import argparse
import json
import sys


def consume_kombu(args):
    from kombu import Connection, Exchange, Queue

    exchange = Exchange(args.exchange, type="direct", durable=True)
    queue = Queue(args.queue, exchange, routing_key=args.routing_key, durable=True)
    with Connection(args.url) as conn:
        sq = conn.SimpleQueue(queue)
        try:
            for _ in range(args.count):
                try:
                    msg = sq.get(block=True, timeout=args.timeout)
                except sq.Empty:
                    return 1
                record = {
                    "payload": msg.decode(),
                    "content_type": msg.content_type,
                    "content_encoding": msg.content_encoding,
                    "delivery_info": {
                        "exchange": msg.delivery_info.get("exchange"),
                        "routing_key": msg.delivery_info.get("routing_key"),
                    },
                    "delivery_tag": msg.delivery_tag,
                    "properties": {
                        k: msg.properties.get(k)
                        for k in ("delivery_mode", "priority", "body_encoding")
                    },
                    "headers": msg.headers,
                }
                msg.ack()
                print(json.dumps(record))
        finally:
            sq.close()
    # kombu's qsize() declares the queue passively, which fails once Redis has removed the
    # emptied list; ask Redis directly.
    import redis

    print(json.dumps({"left": redis.Redis.from_url(args.url).llen(args.queue)}))
    return 0


def consume_raw(args):
    import redis

    r = redis.Redis.from_url(args.url)
    for _ in range(args.count):
        item = r.brpop(args.queue, timeout=args.timeout)
        if item is None:
            return 1
        print(json.dumps({"payload": json.loads(item[1])}))
    print(json.dumps({"left": r.llen(args.queue)}))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--exchange", default="NEW_PACKETS")
    p.add_argument("--routing-key", default="NEW_PACKETS")
    p.add_argument("--mode", choices=["kombu", "raw"], default="kombu")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    if args.mode == "kombu":
        return consume_kombu(args)
    return consume_raw(args)


if __name__ == "__main__":
    sys.exit(main())
