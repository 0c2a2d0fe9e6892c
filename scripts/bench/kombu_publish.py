"""The original's publishing path, for scripts/bench-publish.sh: one kombu publish per message.

Loads JSON lines (messages netpipe-fast wrote for the same capture) as dictionaries, as the
original held them, then publishes COUNT of them one by one with a kombu Producer
(serializer json, persistent delivery, the exchange and routing key of the original), into
Redis or RabbitMQ according to the URL. The queue is declared once before the clock starts, so
the figure is the publish loop alone (the most favourable reading of the original). Prints
one JSON line: {"messages": N, "seconds": S, "rate": N/S}.

Usage: kombu_publish.py --url URL --file MESSAGES.jsonl --count N --queue Q --exchange E
                        --routing-key R
"""

import argparse
import json
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--exchange", required=True)
    p.add_argument("--routing-key", required=True)
    args = p.parse_args()

    from kombu import Connection, Exchange, Queue

    with open(args.file, "rb") as f:
        bodies = [json.loads(line) for line in f if line.strip()]
    if not bodies:
        sys.exit("no messages in " + args.file)
    exchange = Exchange(args.exchange, type="topic", durable=True)
    queue = Queue(args.queue, exchange, routing_key=args.routing_key, durable=True)
    with Connection(args.url) as conn:
        producer = conn.Producer(serializer="json")
        producer.publish(
            bodies[0], exchange=exchange, routing_key=args.routing_key, declare=[queue]
        )
        started = time.perf_counter()
        for i in range(args.count):
            producer.publish(
                bodies[i % len(bodies)],
                exchange=exchange,
                routing_key=args.routing_key,
                delivery_mode=2,
            )
        seconds = time.perf_counter() - started
    print(json.dumps({"messages": args.count, "seconds": seconds, "rate": args.count / seconds}))


if __name__ == "__main__":
    main()
