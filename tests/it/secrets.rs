//! Broker passwords never show: not in any error or log line (every path that names a URL,
//! for each scheme, through the flag, the environment and the password file), and not in the
//! command line other users see (`ps`, /proc/PID/cmdline) when the password comes from
//! `--password-file` or the environment. Brokers: a private redis-server with a password, the
//! shared RabbitMQ (guest/guest) for a refused login; unique queue names.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common;
use crate::common::brokers::{free_port, wait_for, PlainAmqpPort, PrivateRedis};
use crate::common::harness::TempDir;
use crate::common::{bin, unique, FIXTURE};

/// Two passwords: one plain, one holding '/' (which used to end the "host" early and put the
/// whole URL in the message). The fragments below must never be printed.
const PW: &str = "Zq7K9plainpw";
const PW_SLASH: &str = "Zq7K9/slashpw";
const FRAGMENTS: [&str; 3] = ["Zq7K9", "plainpw", "slashpw"];

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_password(what: &str, out: &Output, code: i32) {
    let all = text(out);
    for f in FRAGMENTS {
        assert!(
            !all.contains(f),
            "{what}: password fragment {f:?} printed:\n{all}"
        );
    }
    assert_eq!(out.status.code(), Some(code), "{what}:\n{all}");
    assert!(!all.trim().is_empty(), "{what}: says nothing");
}

/// `read` publishing one message to `url` (flag, or FORWARD_BROKER_URL when `env`).
fn read_to(url: &str, env: bool, extra: &[&str]) -> Output {
    let mut c = bin();
    c.args(["read", FIXTURE, "--count", "1", "--queue", &unique("sec_q")]);
    if env {
        c.env("FORWARD_BROKER_URL", url);
    } else {
        c.args(["-o", url]);
    }
    c.args(extra).stdin(Stdio::null()).output().unwrap()
}

/// `record` from `url` (flag, or RECORD_INPUT_URL when `env`), stopping after one message.
fn record_from(dir: &TempDir, url: &str, env: bool, extra: &[&str]) -> Output {
    let mut c = bin();
    c.arg("record");
    if env {
        c.env("RECORD_INPUT_URL", url);
    } else {
        c.args(["--input", url]);
    }
    c.args(["--queue", &unique("sec_rq"), "--stop-after-num", "1"])
        .arg("--output-csv")
        .arg(dir.0.join(format!("{}.csv", unique("rec"))))
        .arg("--ds-dir")
        .arg(&dir.0)
        .args(extra)
        .env_remove("STOP_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn no_error_path_prints_the_password() {
    let dir = TempDir::unique("sec_err");
    let redis = PrivateRedis::start("sec_redis", &[]);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("the-right-one")
        .query(&mut redis.connection())
        .unwrap();
    let port = redis.port;
    let dead = free_port();
    let plain_amqp = PlainAmqpPort::start();
    let mut cases: Vec<(String, i32)> = Vec::new();
    for pw in [PW, PW_SLASH] {
        // Malformed URLs of every scheme: usage error (2).
        for url in [
            format!("redis://:{pw}@127.0.0.1:notaport/0"),
            format!("redis://:{pw}@127.0.0.1:6379/notadb"),
            format!("rediss://:{pw}@127.0.0.1:0/0"),
            format!("redis://:{pw}@127.0.0.1?db=1"),
            format!("redis://:%zz{pw}@127.0.0.1"),
            format!("redis://u:{pw}"),
            format!("redis://127.0.0.1:{pw}/0"),
            format!("amqp://guest:{pw}@127.0.0.1:99999/"),
            format!("amqps://guest:{pw}@127.0.0.1/%zz"),
            format!("amqp://guest:{pw}@[::1/"),
            format!("tcp://user:{pw}@127.0.0.1:9"),
            format!("tcp://127.0.0.1:{pw}"),
            format!("mqtt://u:{pw}@127.0.0.1"),
            format!("redis:/u:{pw}@127.0.0.1"),
            format!("u:{pw}@127.0.0.1"),
        ] {
            cases.push((url, 2));
        }
        // Nothing listening (9), a refused password (10), TLS to a plain port (11).
        cases.push((format!("redis://:{pw}@127.0.0.1:{dead}/0"), 9));
        cases.push((format!("amqp://guest:{pw}@127.0.0.1:{dead}/"), 9));
        cases.push((format!("redis://:{pw}@127.0.0.1:{port}/0"), 10));
        cases.push((format!("redis://default:{pw}@127.0.0.1:{port}/0"), 10));
        cases.push((format!("amqp://guest:{pw}@127.0.0.1:5672/"), 10));
        cases.push((format!("rediss://:{pw}@127.0.0.1:{port}/0"), 11));
        cases.push((
            format!("amqps://guest:{pw}@127.0.0.1:{}/", plain_amqp.port),
            11,
        ));
    }
    for (url, code) in &cases {
        for env in [false, true] {
            let out = read_to(url, env, &[]);
            assert_no_password(&format!("read -o {url} (env {env})"), &out, *code);
        }
        // record's input: a tcp:// input is not a recorder input at all (usage error).
        let rcode = if url.starts_with("tcp://") { 2 } else { *code };
        let out = record_from(&dir, url, false, &[]);
        assert_no_password(&format!("record --input {url}"), &out, rcode);
        if *code == 2 {
            // capture parses -o before it opens any interface.
            let out = bin()
                .args(["capture", "--iface", "lo", "-o", url])
                .output()
                .unwrap();
            assert_no_password(&format!("capture -o {url}"), &out, 2);
        }
    }
    // The password from a file: refused by the broker, or given for an output with none.
    let file = dir.0.join("pw");
    std::fs::write(&file, format!("{PW_SLASH}\n")).unwrap();
    let f = file.to_str().unwrap();
    let url = format!("redis://127.0.0.1:{port}/0");
    let out = read_to(&url, false, &["--password-file", f]);
    assert_no_password("read --password-file (refused)", &out, 10);
    let out = record_from(&dir, &url, false, &["--password-file", f]);
    assert_no_password("record --password-file (refused)", &out, 10);
    let out = read_to(
        "amqp://guest@127.0.0.1:5672/",
        false,
        &["--password-file", f],
    );
    assert_no_password("read amqp --password-file (refused)", &out, 10);
    let out = read_to("tcp://127.0.0.1:9", false, &["--password-file", f]);
    assert_no_password("read tcp:// --password-file", &out, 2);
    assert!(text(&out).contains("takes no password"), "{}", text(&out));
    let out = record_from(&dir, "-", false, &["--password-file", f]);
    assert_no_password("record - --password-file", &out, 2);
}

/// A running `record` (it waits for messages) whose password came from the file or from the
/// environment: its command line, as every local user sees it, holds no password; and the
/// password did reach the broker (the message pushed later is recorded).
#[test]
fn password_from_file_or_environment_is_not_in_the_command_line() {
    let dir = TempDir::unique("sec_ps");
    let redis = PrivateRedis::start("sec_ps_redis", &[]);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PW_SLASH)
        .query(&mut redis.connection())
        .unwrap();
    let port = redis.port;
    let file = dir.0.join("pw");
    std::fs::write(&file, format!("{PW_SLASH}\n")).unwrap();
    for how in ["file", "env"] {
        let queue = unique("sec_ps_q");
        let csv = dir.0.join(format!("{how}.csv"));
        let mut c = bin();
        c.args(["record", "--queue", &queue, "--stop-after-num", "1"])
            .arg("--output-csv")
            .arg(&csv)
            .arg("--archive-json")
            .arg(dir.0.join(format!("{how}.json")))
            .arg("--ds-dir")
            .arg(&dir.0)
            .env_remove("STOP_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if how == "file" {
            c.args(["--input", &format!("redis://127.0.0.1:{port}/0")])
                .arg("--password-file")
                .arg(&file);
        } else {
            c.env(
                "RECORD_INPUT_URL",
                format!("redis://:{PW_SLASH}@127.0.0.1:{port}/0"),
            );
        }
        let mut child = c.spawn().unwrap();
        let pid = child.id();
        // Connected (and authenticated) once it made its processing list.
        let mut con = redis::Client::open(format!("redis://:Zq7K9%2Fslashpw@127.0.0.1:{port}/0"))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        wait_for("the recorder to connect", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{how}: the recorder ended early: {status}");
            }
            let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
            clients.lines().count() >= 2
        });
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let ps = Command::new("ps")
            .args(["-ww", "-o", "args=", "-p", &pid.to_string()])
            .output()
            .unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout);
        assert!(ps.contains("record"), "ps shows the recorder: {ps}");
        for f in FRAGMENTS {
            assert!(!cmdline.contains(f), "{how}: {f:?} in cmdline {cmdline}");
            assert!(!ps.contains(f), "{how}: {f:?} in ps {ps}");
        }
        let msg = common::expected(&[FIXTURE, "--count", "1"]).remove(0);
        let _: () = redis::cmd("LPUSH")
            .arg(&queue)
            .arg(msg)
            .query(&mut con)
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let all = text(&out);
        assert!(out.status.success(), "{how}: {all}");
        assert!(all.contains("1 recorded"), "{how}: {all}");
        for f in FRAGMENTS {
            assert!(!all.contains(f), "{how}: {f:?} printed: {all}");
        }
    }
}
