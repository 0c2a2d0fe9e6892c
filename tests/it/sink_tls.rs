//! TLS outputs (`rediss://`, `amqps://`, FORWARD_SSL_OPTIONS) against brokers this test starts
//! itself: a certificate authority, a server certificate for 127.0.0.1/localhost and a client
//! certificate made with `openssl` in a temporary folder; a private redis-server with a TLS
//! port (client certificates required) and a private RabbitMQ node with a TLS listener
//! (verify_peer, fail_if_no_peer_cert), each on free ports, stopped at the end. The shared
//! brokers on 6379 and 5672 are never touched.
//!
//! Each private broker also has a plain port on 127.0.0.1, used only by the test to read the
//! messages back; netpipe-fast is given the TLS port alone.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::brokers::{free_port, wait_for, PrivateRedis};
use crate::common::harness::TempDir;
use crate::common::{archived_packets, stderr};
use crate::common::{bin, expected, unique, FIXTURE, FIXTURE_MESSAGES};

/// Polls until something accepts TCP connections on `port`, or panics at the deadline or
/// when `child` exits first.
fn wait_for_port(port: u16, child: &mut Child, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        assert!(Instant::now() < deadline, "{what} not listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A CA, a second unrelated CA, a server certificate (127.0.0.1 and localhost) and a client
/// certificate, both signed by the first CA.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::unique("pki");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir.0)
                .output()
                .expect("openssl is installed (scripts/test.sh installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for (name, subject) in [("ca", "/CN=netpipe test CA"), ("other-ca", "/CN=other CA")] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ]);
        }
        std::fs::write(
            dir.0.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(dir.0.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, subject) in [
            ("server", "/CN=localhost"),
            ("client", "/CN=netpipe client"),
        ] {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).display().to_string()
    }

    /// FORWARD_SSL_OPTIONS with the client certificate, trusting `ca` (a file name here).
    fn options(&self, ca: &str, cert_reqs: &str) -> String {
        serde_json::json!({
            "ca_certs": self.path(ca),
            "certfile": self.path("client.pem"),
            "keyfile": self.path("client.key"),
            "cert_reqs": cert_reqs,
        })
        .to_string()
    }
}

/// Runs `read` of the fixture with `args` and FORWARD_SSL_OPTIONS set to `ssl_options`.
fn read_with(ssl_options: &str, args: &[&str]) -> Output {
    bin()
        .arg("read")
        .arg(FIXTURE)
        .args(args)
        .env("FORWARD_SSL_OPTIONS", ssl_options)
        .output()
        .unwrap()
}

/// `name` as the AMQP queue, exchange and routing key.
fn one_name_args(name: &str) -> [&str; 6] {
    ["--queue", name, "--exchange", name, "--routing-key", name]
}

/// A start-up failure must be exit 11 with one line naming TLS first, and no password.
fn assert_tls_failure(out: &Output, password: &str, must_mention: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(11), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(first.contains("TLS"), "{first}");
    assert!(first.contains(must_mention), "{first}");
    assert!(!err.contains(password), "password printed: {err}");
    assert!(out.stdout.is_empty());
}

/// A private redis-server with a TLS port beside its plain one (which serves the checks).
struct TlsRedis {
    /// Stopped (and its directory removed) on drop.
    _server: PrivateRedis,
    tls_port: u16,
    plain_port: u16,
}

impl TlsRedis {
    fn start(pki: &Pki, password: &str) -> TlsRedis {
        let tls_port = free_port();
        let server = PrivateRedis::start(
            "tls_redis",
            &[
                "--appendonly",
                "no",
                "--tls-port",
                &tls_port.to_string(),
                "--tls-cert-file",
                &pki.path("server.pem"),
                "--tls-key-file",
                &pki.path("server.key"),
                "--tls-ca-cert-file",
                &pki.path("ca.pem"),
                "--tls-auth-clients",
                "yes",
                "--requirepass",
                password,
            ],
        );
        wait_for("the TLS port", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
        });
        TlsRedis {
            plain_port: server.port,
            _server: server,
            tls_port,
        }
    }

    /// The list, oldest first, read through the plain port.
    fn list(&self, password: &str, key: &str) -> Vec<Vec<u8>> {
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
            "127.0.0.1".into(),
            self.plain_port,
        ))
        .unwrap()
        .set_redis_settings(redis::RedisConnectionInfo::default().set_password(password));
        let mut con = redis::Client::open(info).unwrap().get_connection().unwrap();
        if redis::cmd("TYPE")
            .arg(key)
            .query::<String>(&mut con)
            .unwrap()
            == "stream"
        {
            // The `msg` field of each entry, oldest first (--redis-mode stream).
            type Entry = (String, Vec<(String, Vec<u8>)>);
            let entries: Vec<Entry> = redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query(&mut con)
                .unwrap();
            return entries
                .into_iter()
                .map(|(_, mut fields)| {
                    assert_eq!(fields.len(), 1, "one field per entry");
                    let (name, msg) = fields.remove(0);
                    assert_eq!(name, "msg");
                    msg
                })
                .collect();
        }
        let mut items: Vec<Vec<u8>> = redis::Commands::lrange(&mut con, key, 0, -1).unwrap();
        items.reverse();
        items
    }
}

#[test]
fn rediss_delivers_every_message_in_order_and_checks_the_certificate() {
    let pki = Pki::new();
    let password = "tls-s3cret";
    let server = TlsRedis::start(&pki, password);
    let url = format!("rediss://:{password}@127.0.0.1:{}/0", server.tls_port);
    let want = expected(&[FIXTURE]);
    assert_eq!(want.len(), FIXTURE_MESSAGES);

    // The right CA and a client certificate: everything arrives, in order.
    let queue = unique("tls_raw");
    let out = read_with(
        &pki.options("ca.pem", "CERT_REQUIRED"),
        &["-o", &url, "--redis-format", "raw", "--queue", &queue],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(password));
    assert_eq!(server.list(password, &queue), want);

    // Stream mode over the same TLS connection: XADD, every message once and in order.
    let stream = unique("tls_stream");
    let out = read_with(
        &pki.options("ca.pem", "CERT_REQUIRED"),
        &["-o", &url, "--redis-mode", "stream", "--queue", &stream],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.list(password, &stream), want);

    // The options as a flag, with redis-py's spellings and the numeric cert_reqs.
    let queue = unique("tls_flag");
    let flag = serde_json::json!({
        "ssl_ca_certs": pki.path("ca.pem"),
        "ssl_certfile": pki.path("client.pem"),
        "ssl_keyfile": pki.path("client.key"),
        "ssl_cert_reqs": 2,
    })
    .to_string();
    let out = read_with(
        "",
        &[
            "-o",
            &url,
            "--ssl-options",
            &flag,
            "--count",
            "100",
            "--queue",
            &queue,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.list(password, &queue).len(), 100);

    // A CA that did not sign the server's certificate: exit 11 before reading anything.
    let queue = unique("tls_wrong_ca");
    let out = read_with(
        &pki.options("other-ca.pem", "CERT_REQUIRED"),
        &["-o", &url, "--queue", &queue],
    );
    assert_tls_failure(&out, password, "UnknownIssuer");
    assert!(server.list(password, &queue).is_empty());

    // CERT_NONE accepts it (encryption without verification), as Python's ssl does.
    let out = read_with(
        &pki.options("other-ca.pem", "CERT_NONE"),
        &["-o", &url, "--count", "10", "--queue", &queue],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.list(password, &queue).len(), 10);

    // No client certificate: the server refuses it (tls-auth-clients yes).
    let ca_only = serde_json::json!({ "ca_certs": pki.path("ca.pem") }).to_string();
    let out = read_with(&ca_only, &["-o", &url, "--queue", &queue]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(!stderr(&out).contains(password));

    // A CA file that does not exist is named.
    let missing = serde_json::json!({ "ca_certs": "/nonexistent/ca.pem" }).to_string();
    let out = read_with(&missing, &["-o", &url]);
    assert_tls_failure(&out, password, "/nonexistent/ca.pem");

    // The plain port spoken to with TLS: exit 11, not a hang.
    let plain = format!("rediss://:{password}@127.0.0.1:{}/0", server.plain_port);
    let out = read_with(&pki.options("ca.pem", "CERT_REQUIRED"), &["-o", &plain]);
    assert_tls_failure(&out, password, "TLS");
}

/// `record` from rediss:// (the crate's one Redis client, with the sink's TLS set-up), in list
/// mode and in stream mode, reads every message the TLS sink wrote; a CA that did not sign the
/// server's certificate is exit 11 before anything is read, with no password printed.
#[test]
fn record_reads_rediss_lists_and_streams() {
    let pki = Pki::new();
    let password = "tls-rec-s3cret";
    let server = TlsRedis::start(&pki, password);
    let url = format!("rediss://:{password}@127.0.0.1:{}/0", server.tls_port);
    let ssl = pki.options("ca.pem", "CERT_REQUIRED");
    let dir = TempDir::unique("tls_record");
    let want = expected(&[FIXTURE]);
    let record = |name: &str, extra: &[&str], ssl: &str| {
        bin()
            .args(["record", "--input", &url, "--stop-after-num"])
            .arg(FIXTURE_MESSAGES.to_string())
            .args(["--save-after-num", "1000", "--idle-save-ms", "200"])
            .arg("--output-csv")
            .arg(dir.0.join(format!("{name}.csv")))
            .arg("--archive-json")
            .arg(dir.0.join(format!("{name}.json")))
            .args(extra)
            .env("FORWARD_SSL_OPTIONS", ssl)
            .output()
            .unwrap()
    };
    // The packets of an archive, without the fields the recorder adds, in order.
    let archived = |name: &str| archived_packets(&dir.0.join(format!("{name}.json")));
    let want_json: Vec<Value> = want
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    for (mode, name) in [("list", "tls_rec_list"), ("stream", "tls_rec_stream")] {
        let queue = unique(name);
        let out = read_with(&ssl, &["-o", &url, "--redis-mode", mode, "--queue", &queue]);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut extra = vec!["--queue", &queue, "--redis-mode", mode];
        if mode == "stream" {
            extra.extend(["--group", "g", "--consumer", "c"]);
        }
        let out = record(name, &extra, &ssl);
        assert!(out.status.success(), "record {mode}: {}", stderr(&out));
        assert!(!stderr(&out).contains(password));
        assert!(
            archived(name) == want_json,
            "record from rediss:// in {mode} mode did not read every message once, in order"
        );
        if mode == "list" {
            assert!(
                server.list(password, &queue).is_empty(),
                "list not consumed"
            );
        }
    }
    // A CA that did not sign the server's certificate: exit 11, one line naming TLS.
    let queue = unique("tls_rec_wrong_ca");
    let out = record(
        "wrong_ca",
        &["--queue", &queue],
        &pki.options("other-ca.pem", "CERT_REQUIRED"),
    );
    assert_tls_failure(&out, password, "UnknownIssuer");
}

const RABBIT_USER: &str = "npf";
const RABBIT_PASSWORD: &str = "tls-amqp-s3cret";

/// A RabbitMQ node of this test alone: its own node name, ports, database and logs, no
/// plugins but, when asked, the stream plugin with a TLS stream listener and a plain one of its
/// own (the shared node's management and stream ports stay untouched). Stopped with SIGTERM.
struct TlsRabbit {
    child: Child,
    dir: TempDir,
    tls_port: u16,
    plain_port: u16,
    /// The stream protocol's TLS and plain ports (0 without the stream plugin).
    stream_tls_port: u16,
    stream_plain_port: u16,
}

impl TlsRabbit {
    fn start(pki: &Pki) -> TlsRabbit {
        TlsRabbit::start_with(pki, false)
    }

    fn start_with(pki: &Pki, streams: bool) -> TlsRabbit {
        let dir = TempDir::unique("tls_rabbit");
        let (tls_port, plain_port, dist_port) = (free_port(), free_port(), free_port());
        let (stream_tls_port, stream_plain_port) = if streams {
            (free_port(), free_port())
        } else {
            (0, 0)
        };
        let mut conf = format!(
            "listeners.tcp.default = 127.0.0.1:{plain_port}\n\
             listeners.ssl.default = 127.0.0.1:{tls_port}\n\
             ssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true\n\
             default_user = {RABBIT_USER}\n\
             default_pass = {RABBIT_PASSWORD}\n",
            pki.path("ca.pem"),
            pki.path("server.pem"),
            pki.path("server.key"),
        );
        if streams {
            // The TLS stream listener uses the node's ssl_options (client certificate required
            // too); the advertised host is the one the certificate names.
            conf.push_str(&format!(
                "stream.listeners.tcp.default = 127.0.0.1:{stream_plain_port}\n\
                 stream.listeners.ssl.default = 127.0.0.1:{stream_tls_port}\n\
                 stream.advertised_host = 127.0.0.1\n"
            ));
        }
        std::fs::write(dir.0.join("rabbitmq.conf"), conf).unwrap();
        let plugins = if streams {
            "[rabbitmq_stream].\n"
        } else {
            "[].\n"
        };
        std::fs::write(dir.0.join("enabled_plugins"), plugins).unwrap();
        // The package's wrapper in /usr/sbin switches to the rabbitmq user, who cannot read
        // our folder; the script it runs takes its settings from the environment.
        let server = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        assert!(
            server.exists(),
            "{} is missing: install rabbitmq-server (scripts/test.sh does)",
            server.display()
        );
        let mut child = Command::new(server)
            .env(
                "RABBITMQ_NODENAME",
                // Unique per node: the tests of this file run at the same time, and two nodes
                // of one name cannot both start.
                format!("{}@localhost", unique("npf-tls")),
            )
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.0.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                dir.0.join("enabled_plugins"),
            )
            .env("RABBITMQ_MNESIA_BASE", dir.0.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.0.join("log"))
            .env("RABBITMQ_PID_FILE", dir.0.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server starts");
        wait_for_port(
            tls_port,
            &mut child,
            "own RabbitMQ node",
            Duration::from_secs(90),
        );
        if streams {
            wait_for_port(
                stream_tls_port,
                &mut child,
                "own RabbitMQ node's TLS stream listener",
                Duration::from_secs(90),
            );
        }
        TlsRabbit {
            child,
            dir,
            tls_port,
            plain_port,
            stream_tls_port,
            stream_plain_port,
        }
    }

    /// The TLS listener's `amqps://` URL, with the test user's password.
    fn amqps_url(&self) -> String {
        format!(
            "amqps://{RABBIT_USER}:{RABBIT_PASSWORD}@127.0.0.1:{}/",
            self.tls_port
        )
    }

    /// Reads `count` messages through the plain port with kombu (tests/kombu/consume_amqp.py).
    fn consume(&self, queue: &str, count: usize) -> Vec<Value> {
        let url = format!(
            "amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@127.0.0.1:{}//",
            self.plain_port
        );
        common::kombu::AmqpNames::one(&url, queue).consume(count, &[])
    }
}

impl Drop for TlsRabbit {
    fn drop(&mut self) {
        // The Erlang VM writes its pid; SIGTERM stops the node cleanly, the script follows.
        if let Ok(pid) = std::fs::read_to_string(self.dir.0.join("pid")) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(self.child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn amqps_delivers_every_message_in_order_and_checks_the_certificate() {
    let pki = Pki::new();
    let broker = TlsRabbit::start(&pki);
    let password = RABBIT_PASSWORD;
    let url = broker.amqps_url();
    let want = expected(&[FIXTURE]);

    let queue = unique("amqps_all");
    let names = one_name_args(&queue);
    let out = read_with(
        &pki.options("ca.pem", "CERT_REQUIRED"),
        &[&["-o", url.as_str()][..], &names[..]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains(password), "password printed: {err}");
    assert!(
        err.contains(&format!("{FIXTURE_MESSAGES} confirmed")),
        "{err}"
    );
    let (got, left) = common::kombu::bodies(&broker.consume(&queue, FIXTURE_MESSAGES));
    assert_eq!(left, 0, "more messages than published");
    assert_eq!(got, want);

    // A CA that did not sign the broker's certificate: exit 11, nothing published.
    let out = read_with(
        &pki.options("other-ca.pem", "CERT_REQUIRED"),
        &[&["-o", url.as_str()][..], &names[..]].concat(),
    );
    assert_tls_failure(&out, password, "UnknownIssuer");

    // CERT_NONE accepts it.
    let out = read_with(
        &pki.options("other-ca.pem", "CERT_NONE"),
        &[&["-o", url.as_str(), "--count", "5"][..], &names[..]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let records = broker.consume(&queue, 5);
    assert_eq!(records.last().unwrap()["left"].as_u64(), Some(0));

    // The plain AMQP port spoken to with TLS: exit 11.
    let plain = format!(
        "amqps://{RABBIT_USER}:{password}@127.0.0.1:{}/",
        broker.plain_port
    );
    let out = read_with(
        &pki.options("ca.pem", "CERT_REQUIRED"),
        &[&["-o", plain.as_str()][..], &names[..]].concat(),
    );
    assert_tls_failure(&out, password, "TLS");
}

/// `record` from `amqps://` (the AMQP sink's own connection, TLS and declarations, in
/// `broker::amqp`): a private node whose TLS listener wants a client certificate; record reads
/// every message the TLS sink published, once and in order, and leaves the queue empty; a CA
/// that did not sign the broker's certificate, and the plain port spoken to with TLS, are exit
/// 11 before anything is read, with no password printed.
#[test]
fn record_reads_amqps_queues() {
    let pki = Pki::new();
    let broker = TlsRabbit::start(&pki);
    let password = RABBIT_PASSWORD;
    let url = broker.amqps_url();
    let ssl = pki.options("ca.pem", "CERT_REQUIRED");
    let queue = unique("amqps_record");
    let names = one_name_args(&queue);
    let out = read_with(&ssl, &[&["-o", url.as_str()][..], &names[..]].concat());
    assert!(out.status.success(), "{}", stderr(&out));

    let dir = TempDir::unique("amqps_record");
    let record = |url: &str, ssl: &str| {
        bin()
            .args(["record", "--input", url, "--stop-after-num"])
            .arg(FIXTURE_MESSAGES.to_string())
            .args(["--save-after-num", "1000", "--idle-save-ms", "200"])
            .arg("--output-csv")
            .arg(dir.0.join("amqps.csv"))
            .arg("--archive-json")
            .arg(dir.0.join("amqps.json"))
            .args(names)
            .env("FORWARD_SSL_OPTIONS", ssl)
            .output()
            .unwrap()
    };
    let out = record(&url, &ssl);
    assert!(out.status.success(), "record: {}", stderr(&out));
    assert!(!stderr(&out).contains(password), "{}", stderr(&out));
    // The packets of the archive, without the fields the recorder adds, in order.
    let packets = archived_packets(&dir.0.join("amqps.json"));
    let want: Vec<Value> = expected(&[FIXTURE])
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(packets.len(), want.len(), "messages recorded");
    assert!(
        packets == want,
        "record from amqps:// did not read every message once, in order"
    );
    // Acknowledged: nothing is left in the queue.
    let left = broker.consume(&queue, 0);
    assert_eq!(left.last().unwrap()["left"].as_u64(), Some(0), "{left:?}");

    // A CA that did not sign the broker's certificate: exit 11, one line naming TLS.
    let out = record(&url, &pki.options("other-ca.pem", "CERT_REQUIRED"));
    assert_tls_failure(&out, password, "UnknownIssuer");
    // The plain AMQP port spoken to with TLS: exit 11.
    let plain = format!(
        "amqps://{RABBIT_USER}:{password}@127.0.0.1:{}/",
        broker.plain_port
    );
    let out = record(&plain, &ssl);
    assert_tls_failure(&out, password, "TLS");
}

/// `rabbitmq-stream+tls://`: a private node with a TLS stream listener (client certificate
/// required). Every message is confirmed and read back, in order, by kombu over AMQP 0-9-1;
/// a certificate the options do not trust, a missing CA file and a key the stream client
/// cannot use end the run at start with exit 11 and one line naming TLS.
#[test]
fn rabbitmq_stream_tls_delivers_every_message_in_order_and_checks_the_certificate() {
    let pki = Pki::new();
    let broker = TlsRabbit::start_with(&pki, true);
    let password = RABBIT_PASSWORD;
    let url = format!(
        "rabbitmq-stream+tls://{RABBIT_USER}:{password}@127.0.0.1:{}/",
        broker.stream_tls_port
    );
    let want = expected(&[FIXTURE]);
    let stream = unique("tls_stream");
    let out = read_with(
        &pki.options("ca.pem", "CERT_REQUIRED"),
        &["-o", &url, "--queue", &stream, "--producer-name", &stream],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains(password), "password printed: {err}");
    assert!(
        err.contains(&format!("{FIXTURE_MESSAGES} confirmed")),
        "{err}"
    );
    // One more than was published is asked for: the read must end at exactly the total.
    let amqp = format!(
        "amqp://{RABBIT_USER}:{password}@127.0.0.1:{}//",
        broker.plain_port
    );
    let read = common::kombu::command("consume_stream.py")
        .args(["--url", &amqp, "--stream", &stream, "--count"])
        .arg((FIXTURE_MESSAGES + 1).to_string())
        .args(["--timeout", "15"])
        .output()
        .unwrap();
    let got = common::lines(&read.stdout);
    assert_eq!(got.len(), want.len(), "kombu read back another count");
    assert!(got == want, "kombu read other messages or another order");

    // A CA that did not sign the broker's certificate: exit 11, nothing published.
    let bad = unique("tls_stream_bad");
    let out = read_with(
        &pki.options("other-ca.pem", "CERT_REQUIRED"),
        &["-o", &url, "--queue", &bad],
    );
    assert_tls_failure(&out, password, "UnknownIssuer");

    // CERT_NONE: the stream client then sends no client certificate, which this broker
    // requires; refused at start with the reason rather than a failed handshake.
    let out = read_with(
        &pki.options("other-ca.pem", "CERT_NONE"),
        &["-o", &url, "--queue", &bad],
    );
    assert_tls_failure(&out, password, "CERT_NONE");

    // Files the stream client would panic on are refused first, naming the file.
    let missing = serde_json::json!({
        "ca_certs": "/nonexistent/ca.pem",
        "certfile": pki.path("client.pem"),
        "keyfile": pki.path("client.key"),
    })
    .to_string();
    let out = read_with(&missing, &["-o", &url, "--queue", &bad]);
    assert_tls_failure(&out, password, "/nonexistent/ca.pem");
    let no_ca = serde_json::json!({
        "certfile": pki.path("client.pem"),
        "keyfile": pki.path("client.key"),
    })
    .to_string();
    let out = read_with(&no_ca, &["-o", &url, "--queue", &bad]);
    assert_tls_failure(&out, password, "ca_certs");
    let rsa_key = pki.path("client-rsa.key");
    let converted = Command::new("openssl")
        .args([
            "rsa",
            "-traditional",
            "-in",
            &pki.path("client.key"),
            "-out",
        ])
        .arg(&rsa_key)
        .output()
        .unwrap();
    assert!(converted.status.success(), "{converted:?}");
    let pkcs1 = serde_json::json!({
        "ca_certs": pki.path("ca.pem"),
        "certfile": pki.path("client.pem"),
        "keyfile": rsa_key,
    })
    .to_string();
    let out = read_with(&pkcs1, &["-o", &url, "--queue", &bad]);
    assert_tls_failure(&out, password, "PKCS #8");

    // The plain stream port spoken to with TLS: exit 11, not a hang.
    let plain = format!(
        "rabbitmq-stream+tls://{RABBIT_USER}:{password}@127.0.0.1:{}/",
        broker.stream_plain_port
    );
    let out = read_with(
        &pki.options("ca.pem", "CERT_REQUIRED"),
        &["-o", &plain, "--queue", &bad],
    );
    assert_tls_failure(&out, password, "TLS");
}

#[test]
fn bad_ssl_options_are_a_usage_error_named_in_one_line() {
    for (options, says) in [
        (r#"{"ca_cert": "/x.pem"}"#, "unknown SSL option"),
        (r#"{"cert_reqs": "CERT_MAYBE"}"#, "cert_reqs"),
        ("not json", "JSON"),
    ] {
        let out = read_with(options, &["-o", "rediss://:s3cret@127.0.0.1:1/0"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{options}: {err}");
        assert!(err.contains(says), "{options}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
