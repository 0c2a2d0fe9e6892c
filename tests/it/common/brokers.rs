//! Private brokers for tests that stop a broker: each test starts its own server process on
//! free ports in a temporary directory, so the shared Redis and RabbitMQ are never touched.
//! Both are killed (by their process id) and their directories removed on drop.

use super::unique;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` until it is true; panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the Redis server on `port` answers PING as a server that has loaded its data: PONG,
/// or NOAUTH from one that wants a password (a server still loading its append-only file
/// answers LOADING).
fn redis_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok()
        && s.read_exact(&mut reply).is_ok()
        && (reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH"))
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// `redis-server --port <free> --save ''` (plus `extra`), restartable on the same port.
///
/// The port comes from [`free_port`] (bind and release), so another process may take it
/// before the server binds it: a start that cannot bind is tried again on a fresh port, and a
/// restart on the same port is tried again until the port is free (bounded). A server counts
/// as started only once its own log says it listens, so a server of another test that
/// answers on the port is never taken for ours.
pub struct PrivateRedis {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
}

impl PrivateRedis {
    pub fn start(what: &str, extra: &[&str]) -> PrivateRedis {
        let dir = std::env::temp_dir().join(unique(what));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = PrivateRedis {
            child: None,
            port: 0,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..10 {
            r.port = free_port();
            if r.try_spawn() {
                return r;
            }
        }
        panic!(
            "no private redis-server started on 10 free ports; last log:\n{}",
            r.log()
        );
    }

    /// A server that writes every write to its append-only file before it answers
    /// (`--appendonly yes --appendfsync always`): what it acknowledged survives a SIGKILL and
    /// is there again after [`PrivateRedis::spawn`].
    pub fn durable(what: &str) -> PrivateRedis {
        PrivateRedis::start(what, &["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// Starts the server again on its port (after [`PrivateRedis::kill`], which waited for
    /// the old process) and waits until it answers PING (an append-only file is loaded by
    /// then). While the port is still taken, tries again for at most 30 s.
    pub fn spawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.try_spawn() {
            assert!(
                Instant::now() < deadline,
                "the private redis-server could not listen on port {} again; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// One start on `self.port`: true once this process logged that it listens and the port
    /// answers PING; false if it exited first (it could not bind the port).
    fn try_spawn(&mut self) -> bool {
        // A fresh log, so a line of an earlier process is not taken for this one's.
        let _ = std::fs::remove_file(self.log_path());
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--dir"])
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        let mut exited = false;
        wait_for("the private redis-server", Duration::from_secs(30), || {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                exited = true;
                return true;
            }
            self.log().contains("Ready to accept connections") && redis_ready(port)
        });
        if exited {
            self.child = None;
        }
        !exited
    }

    /// SIGKILL: the broker vanishes without closing anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: the broker stops answering but keeps its connections.
    pub fn pause(&self, paused: bool) {
        if let Some(c) = &self.child {
            let sig = if paused { "-STOP" } else { "-CONT" };
            let ok = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill {sig} failed");
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.pause(false);
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain (non-TLS) AMQP 0-9-1 port of the test's own that answers every client as
/// RabbitMQ answers one whose first bytes are not the AMQP protocol header: it writes the
/// header it speaks (`AMQP\0\0\x09\x01`) and closes. A TLS client talking to it sees
/// non-TLS bytes at once, so a test of "TLS spoken to a plain port" does not depend on how
/// fast a loaded shared broker answers. Stopped (and its thread joined) on drop.
pub struct PlainAmqpPort {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PlainAmqpPort {
    pub fn start() -> PlainAmqpPort {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                // RabbitMQ reads the 8 bytes of a protocol header before it answers.
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut first = [0u8; 8];
                let _ = conn.read_exact(&mut first);
                let _ = conn.write_all(b"AMQP\x00\x00\x09\x01");
            }
        });
        PlainAmqpPort {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PlainAmqpPort {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accepting thread, which sees the flag and returns.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A RabbitMQ node of the test's own: node name `npf-<pid>-<n>@localhost`, AMQP and
/// distribution ports free ones, database, logs, config and (no) plugins in a temporary
/// directory. rabbitmq-server drops root to the `rabbitmq` user, so the directory is made
/// writable for it. Epmd is the machine's (a node name registers there; nothing else).
pub struct PrivateRabbit {
    child: Option<Child>,
    pub node: String,
    pub port: u16,
    /// The stream protocol port (0: no stream plugin).
    pub stream_port: u16,
    dist_port: u16,
    pub dir: PathBuf,
}

impl PrivateRabbit {
    pub fn start(what: &str) -> PrivateRabbit {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        PrivateRabbit::start_node(
            what,
            &format!("npf-{}-{nanos}@localhost", std::process::id()),
            false,
        )
    }

    /// A node named `node`; with `stream`, the stream plugin on a free port of its own
    /// (advertised as 127.0.0.1, so clients sent to it by the stream metadata reach it).
    pub fn start_node(what: &str, node: &str, stream: bool) -> PrivateRabbit {
        let dir = std::env::temp_dir().join(unique(what));
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let port = free_port();
        let stream_port = if stream { free_port() } else { 0 };
        let mut conf = format!("listeners.tcp.1 = 127.0.0.1:{port}\nloopback_users = none\n");
        if stream {
            conf.push_str(&format!(
                "stream.listeners.tcp.1 = 127.0.0.1:{stream_port}\n\
                 stream.advertised_host = 127.0.0.1\n\
                 stream.advertised_port = {stream_port}\n"
            ));
        }
        std::fs::write(dir.join("rabbitmq.conf"), conf).unwrap();
        let plugins = if stream {
            "[rabbitmq_stream].\n"
        } else {
            "[].\n"
        };
        std::fs::write(dir.join("enabled_plugins"), plugins).unwrap();
        let ok = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chmod of {} failed", dir.display());
        let mut r = PrivateRabbit {
            child: None,
            node: node.to_string(),
            port,
            stream_port,
            dist_port: free_port(),
            dir,
        };
        r.spawn();
        r
    }

    /// `rabbitmqctl -n <this node> ARGS`, bounded; its output, or a panic naming the step.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .args(["120", "rabbitmqctl", "-n", &self.node])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rabbitmqctl -n {} {args:?} failed: {}",
            self.node,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Makes this node a member of `seed`'s cluster.
    pub fn join(&self, seed: &PrivateRabbit) {
        self.ctl(&["stop_app"]);
        self.ctl(&["join_cluster", &seed.node]);
        self.ctl(&["start_app"]);
        let port = self.port;
        wait_for("the joined node", Duration::from_secs(120), || {
            accepts(port)
        });
    }

    /// Starts the node (again, on the same ports and database) and waits for its listener.
    pub fn spawn(&mut self) {
        let child = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_for(
            "the private RabbitMQ node",
            Duration::from_secs(120),
            || {
                if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                    panic!(
                        "private rabbitmq-server exited: {status} (logs in {})",
                        self.dir.join("log").display()
                    );
                }
                accepts(port)
            },
        );
        let stream_port = self.stream_port;
        if stream_port != 0 {
            wait_for(
                "the private node's stream port",
                Duration::from_secs(60),
                || accepts(stream_port),
            );
        }
    }

    /// The Erlang VM's process id (rabbitmq-server runs it under `su`, as a child).
    fn beam_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("pid")).ok()?;
        text.trim().parse().ok()
    }

    /// SIGKILL to the node: the broker vanishes without closing anything. Persistent
    /// messages it confirmed are on disk and come back at [`PrivateRabbit::spawn`].
    pub fn kill(&mut self) {
        if let Some(pid) = self.beam_pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let port = self.port;
        wait_for(
            "the killed node to let go of its port",
            Duration::from_secs(30),
            || !accepts(port),
        );
        let _ = std::fs::remove_file(self.dir.join("pid"));
    }

    /// A clean shutdown (`rabbitmqctl stop`): connections are closed and every log is
    /// flushed; [`PrivateRabbit::spawn`] starts the node again on the same database.
    pub fn stop(&mut self) {
        self.ctl(&["stop"]);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let port = self.port;
        wait_for(
            "the stopped node to let go of its port",
            Duration::from_secs(60),
            || !accepts(port),
        );
        let _ = std::fs::remove_file(self.dir.join("pid"));
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// redis-server inside network namespace `ns` (its loopback brought up) on the usual port
/// (the namespace is the test's own, so the port is free there), data in `dir`; killed on
/// drop.
pub struct NsRedis {
    child: Child,
    ns: String,
}

impl NsRedis {
    pub const PORT: u16 = 6379;

    pub fn start(ns: &str, dir: &std::path::Path) -> NsRedis {
        super::harness::ip(&["-n", ns, "link", "set", "lo", "up"]);
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "redis-server", "--port"])
            .arg(Self::PORT.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server in the namespace");
        let mut r = NsRedis {
            child,
            ns: ns.to_owned(),
        };
        wait_for("redis in the namespace", Duration::from_secs(30), || {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("redis-server in namespace {ns} exited: {status}");
            }
            r.cli(&["PING"]) == "PONG"
        });
        r
    }

    /// redis-cli's answer to `args` inside the namespace, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "redis-cli", "-p"])
            .arg(Self::PORT.to_string())
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for NsRedis {
    fn drop(&mut self) {
        // `ip netns exec` execs redis-server, so this is the server's own process id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A restart while another process holds the port waits for the port instead of failing or
/// taking the other process for the server.
#[test]
fn private_redis_restarts_on_its_port_once_the_port_is_free() {
    use redis::Commands;
    let mut server = PrivateRedis::durable("restart-port");
    let _: () = server.connection().set("k", "v").unwrap();
    server.kill();
    let holder = TcpListener::bind(("127.0.0.1", server.port)).unwrap();
    let log = server.log_path();
    let releaser = std::thread::spawn(move || {
        // Released only after a start has failed on the taken port.
        wait_for("a refused start", Duration::from_secs(30), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Address already in use"))
        });
        drop(holder);
    });
    server.spawn();
    releaser.join().unwrap();
    let v: String = server.connection().get("k").unwrap();
    assert_eq!(v, "v");
}
