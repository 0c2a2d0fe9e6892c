//! The original's messaging library as the other side of our brokers: the scripts in
//! tests/kombu run with the kombu virtual environment's Python (target/kombu-venv, made by
//! scripts/test.sh).

use serde_json::Value;
use std::process::{Command, Stdio};

/// `python tests/kombu/<script>` with the kombu environment's interpreter, which must exist.
pub fn command(script: &str) -> Command {
    let py = super::venv_python("kombu");
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh, which makes the kombu virtual environment",
        py.display()
    );
    let mut c = Command::new(py);
    c.arg(super::root().join("tests/kombu").join(script));
    c
}

/// `python -c CODE` with the kombu environment's interpreter (kombu, py-amqp and redis-py),
/// which must exist.
pub fn inline(code: &str) -> Command {
    let py = super::venv_python("kombu");
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh, which makes the kombu virtual environment",
        py.display()
    );
    let mut c = Command::new(py);
    c.arg("-c").arg(code);
    c
}

/// Runs `script ARGS`, which must succeed; its stdout, one JSON value a line.
pub fn json_lines(script: &str, args: &[&str]) -> Vec<Value> {
    let out = command(script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    super::lines(&out.stdout)
        .iter()
        .map(|l| {
            serde_json::from_slice(l).unwrap_or_else(|e| panic!("{script} printed non-JSON: {e}"))
        })
        .collect()
}

/// Deletes the exchange and queue that `names` (`--queue Q --exchange X --routing-key K`)
/// name on the broker at `url` (consume_amqp.py --delete); best effort, for a test's
/// clean-up on drop.
pub fn delete_amqp(url: &str, names: &[String]) {
    let _ = command("consume_amqp.py")
        .args(["--url", url, "--delete"])
        .args(names)
        .stdout(Stdio::null())
        .status();
}

/// The shared RabbitMQ answers on 127.0.0.1:5672 (scripts/test.sh starts it).
pub fn shared_rabbit_up() {
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", 5672)).is_ok(),
        "RabbitMQ is not answering on 127.0.0.1:5672; run scripts/test.sh"
    );
}

/// The shared RabbitMQ's AMQP URL (guest/guest, vhost `/`).
pub const SHARED_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The queue, exchange and routing key one test publishes through, unique to it, on the
/// broker at `url`; consumed with kombu (tests/kombu/consume_amqp.py).
pub struct AmqpNames {
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
    url: String,
    /// Whether drop deletes them (on the shared broker, which outlives the test).
    delete: bool,
}

impl AmqpNames {
    /// Unique names on the shared RabbitMQ, which must be up; deleted on drop, also when the
    /// test fails. The clean-up needs target/kombu-venv (scripts/test.sh makes it), so its
    /// absence fails the test here rather than leaving queues on the shared broker.
    pub fn shared(what: &str) -> AmqpNames {
        shared_rabbit_up();
        let py = super::venv_python("kombu");
        assert!(
            py.exists(),
            "{} is missing: run scripts/test.sh (the clean-up of test queues uses kombu)",
            py.display()
        );
        let mut names = AmqpNames::private(SHARED_AMQP, what);
        names.delete = true;
        names
    }

    /// Unique names on a private node at `url`, which goes away with the test (nothing to
    /// delete).
    pub fn private(url: &str, what: &str) -> AmqpNames {
        AmqpNames {
            queue: super::unique(&format!("{what}_q")),
            exchange: super::unique(&format!("{what}_x")),
            routing_key: super::unique(&format!("{what}_rk")),
            url: url.to_string(),
            delete: false,
        }
    }

    /// `name` as queue, exchange and routing key, on a private node at `url`.
    pub fn one(url: &str, name: &str) -> AmqpNames {
        AmqpNames {
            queue: name.to_string(),
            exchange: name.to_string(),
            routing_key: name.to_string(),
            url: url.to_string(),
            delete: false,
        }
    }

    /// `--queue Q --exchange X --routing-key K`, as the binary and the kombu scripts take them.
    pub fn args(&self) -> Vec<String> {
        [
            "--queue",
            &self.queue,
            "--exchange",
            &self.exchange,
            "--routing-key",
            &self.routing_key,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// consume_amqp.py for `count` messages (`extra` arguments after the names), which must
    /// succeed: its JSON lines, the messages then `{"left": N}`.
    pub fn consume(&self, count: usize, extra: &[&str]) -> Vec<Value> {
        let count = count.to_string();
        let names = self.args();
        let mut args = vec!["--url", &self.url, "--count", &count];
        args.extend(names.iter().map(String::as_str));
        args.extend(extra);
        json_lines("consume_amqp.py", &args)
    }
}

impl Drop for AmqpNames {
    fn drop(&mut self) {
        if self.delete {
            delete_amqp(&self.url, &self.args());
        }
    }
}

/// The bodies of consume_amqp.py's records, and the closing `left` count (both required).
pub fn bodies(records: &[Value]) -> (Vec<Vec<u8>>, u64) {
    let (last, messages) = records
        .split_last()
        .expect("consume_amqp.py printed nothing");
    let left = last["left"].as_u64().expect("closing {\"left\": N}");
    let bodies = messages
        .iter()
        .map(|r| r["body"].as_str().expect("body").as_bytes().to_vec())
        .collect();
    (bodies, left)
}

/// consume_stream.py: the messages of `stream` (over AMQP 0-9-1 at `url`) from its start, up
/// to `count`, waiting at most `timeout_secs`; with whether all `count` arrived and the
/// script's stderr.
fn read_stream(
    url: &str,
    stream: &str,
    count: usize,
    timeout_secs: u32,
) -> (Vec<Vec<u8>>, bool, String) {
    let out = command("consume_stream.py")
        .args(["--url", url, "--stream", stream, "--count"])
        .arg(count.to_string())
        .args(["--timeout", &timeout_secs.to_string()])
        .output()
        .unwrap();
    (
        super::lines(&out.stdout),
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first `count` messages of `stream`, which must all arrive within `timeout_secs`.
pub fn stream_messages(url: &str, stream: &str, count: usize, timeout_secs: u32) -> Vec<Vec<u8>> {
    let (got, all, stderr) = read_stream(url, stream, count, timeout_secs);
    assert!(
        all,
        "kombu read {} of {count} messages of {stream} in {timeout_secs} s: {stderr}",
        got.len()
    );
    got
}

/// Every message of `stream`, which holds at most `at_most`: one more is asked for, so the
/// read ends at the timeout (`timeout_secs`) with exactly what is there.
pub fn whole_stream(url: &str, stream: &str, at_most: usize, timeout_secs: u32) -> Vec<Vec<u8>> {
    read_stream(url, stream, at_most + 1, timeout_secs).0
}
