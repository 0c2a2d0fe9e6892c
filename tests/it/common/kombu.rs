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
