//! Operations (issue 11, items 4 to 6): `--config FILE` and its precedence, `config check`,
//! the trust rules of the file, the man pages and shell completions made from the CLI
//! definition, scripts/install.sh, and the systemd unit (verified by systemd-analyze, and its
//! settings run for real: a non-root user with only ambient CAP_NET_RAW/CAP_NET_ADMIN, no
//! `--user`, capturing into Redis with the spool under the state directory).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common;
use crate::common::brokers::NsRedis;
use crate::common::harness::{self, NetnsPair, Process, TempDir};
use crate::common::stderr;
use crate::common::{bin, unique, FIXTURE};

const DEADLINE: Duration = Duration::from_secs(60);

/// A config file `name` in `dir` with `text`, mode 0600.
fn config_file(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path(name);
    fs::write(&p, text).expect("write config");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run netpipe-fast")
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Flags > file > environment > defaults, for an option with an environment variable
/// (--source-host, SOURCE_HOST), one without (--count), a flag (--quiet) and a section that
/// wins over the top of the file.
#[test]
fn flags_win_over_the_file_and_the_file_over_the_environment() {
    let dir = TempDir::new("np-ops", "precedence");
    let cfg = config_file(
        &dir,
        "a.toml",
        "source-host = \"top\"\ncount = 5\n[read]\nsource-host = \"from-file\"\nquiet = true\n",
    );
    // File over environment and defaults; the section over the top.
    let out = run(bin()
        .args(["read", FIXTURE, "--config"])
        .arg(&cfg)
        .env("SOURCE_HOST", "from-env"));
    assert!(out.status.success(), "{}", stderr(&out));
    let msgs = json_lines(&out);
    assert_eq!(msgs.len(), 5);
    assert!(msgs.iter().all(|m| m["source"] == "from-file"), "{msgs:?}");
    assert_eq!(stderr(&out), "", "quiet = true silences the summary");
    // Flags over the file.
    let out = run(bin()
        .args(["read", FIXTURE, "-c", "2", "--source-host", "from-flag"])
        .args(["--config".as_ref(), cfg.as_os_str()])
        .env("SOURCE_HOST", "from-env"));
    let msgs = json_lines(&out);
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| m["source"] == "from-flag"), "{msgs:?}");
    // Environment over the defaults when the file does not say.
    let bare = config_file(&dir, "b.toml", "count = 1\n");
    let out = run(bin()
        .args(["read", FIXTURE, "-q", "--config"])
        .arg(&bare)
        .env("SOURCE_HOST", "from-env"));
    assert_eq!(json_lines(&out)[0]["source"], "from-env");
}

/// Repeatable options take arrays, top-level keys of other
/// commands are left alone, and `--config=FILE` works as well as `--config FILE`.
#[test]
fn arrays_positionals_and_keys_of_other_commands() {
    let dir = TempDir::new("np-ops", "arrays");
    let fixture = common::root().join(FIXTURE);
    let cfg = config_file(
        &dir,
        "c.toml",
        &format!(
            "iface = \"not-used-by-read\"\nworkers = 2\n[read]\nread-file = [{f:?}, {f:?}]\n\
             filter = \"udp\"\nquiet = true\n",
            f = fixture.display().to_string()
        ),
    );
    let once = run(bin().args(["read", FIXTURE, "-q", "udp"]));
    assert!(once.status.success(), "{}", stderr(&once));
    let out = run(bin().arg("read").arg(format!("--config={}", cfg.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json_lines(&out).len(),
        2 * json_lines(&once).len(),
        "both files, filtered by the file's expression"
    );
}

/// `config check` names every bad key with its line and exits 2; a good file exits 0; a run
/// with a bad file stops before anything is written.
#[test]
fn config_check_names_each_bad_key_and_its_line() {
    let dir = TempDir::new("np-ops", "check");
    let bad = config_file(
        &dir,
        "bad.toml",
        "workers = 2\n# a comment\nwokers = 3\n\n[capture]\nring-mb = \"lots\"\n\
         [read]\nworkers = 999\nquiet = \"yes\"\n[nosuch]\nx = 1\n",
    );
    let out = run(bin().args(["config", "check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    let want = [
        (3, "\"wokers\"", "unknown key"),
        (6, "\"capture.ring-mb\"", "lots"),
        (8, "\"read.workers\"", "256"),
        (9, "\"read.quiet\"", "true or false"),
        (10, "\"nosuch\"", "unknown section"),
    ];
    assert_eq!(lines.len(), want.len(), "{err}");
    for (line, (n, key, why)) in lines.iter().zip(want) {
        assert!(
            line.starts_with(&format!("{}:{n}: key {key}", bad.display())) && line.contains(why),
            "{line:?} should name line {n}, {key} and {why:?}"
        );
    }
    // Syntax errors name their line too.
    let broken = config_file(&dir, "broken.toml", "count = 1\noutput = \n");
    let out = run(bin().args(["config", "check"]).arg(&broken));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!("{}:2: not TOML", broken.display())),
        "{}",
        stderr(&out)
    );
    // The shipped example is a good file.
    let out = run(bin().args(["config", "check", "scripts/netpipe-fast.toml"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
    // A run with the bad file: exit 2, nothing written.
    let out_file = dir.path("out.jsonl");
    let out = run(bin()
        .args(["read", FIXTURE, "-o"])
        .arg(&out_file)
        .arg("--config")
        .arg(&bad));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("wokers"), "{}", stderr(&out));
    assert!(!out_file.exists());
}

/// The file decides where packets go: a file others can write, a symbolic link, or one owned
/// by another user is refused (exit 2, one line saying why); a password in a URL in a file
/// others can read gets a warning.
#[test]
fn untrusted_config_files_are_refused() {
    let dir = TempDir::new("np-ops", "trust");
    let cfg = config_file(&dir, "t.toml", "count = 1\nquiet = true\n");
    let refused = |path: &Path, why: &str| {
        let out = run(bin().args(["read", FIXTURE, "--config"]).arg(path));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(out.stdout.is_empty(), "nothing read");
        let e = stderr(&out);
        assert!(
            e.contains(&path.display().to_string()) && e.contains(why),
            "{e:?} should say {why:?}"
        );
    };
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o620)).expect("chmod");
    refused(&cfg, "writable by group or others");
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o602)).expect("chmod");
    refused(&cfg, "writable by group or others");
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = dir.path("link.toml");
    std::os::unix::fs::symlink(&cfg, &link).expect("symlink");
    refused(&link, "symbolic link");
    refused(&dir.path("missing.toml"), "cannot open");
    if harness::root_available("config ownership test") {
        let theirs = config_file(&dir, "theirs.toml", "count = 1\n");
        let chown = Command::new("chown")
            .args(["nobody"])
            .arg(&theirs)
            .status()
            .expect("chown");
        assert!(chown.success());
        refused(&theirs, "owned by uid");
    }
    // A password in a URL, the file readable by others: a warning naming the key and line.
    let secret = config_file(
        &dir,
        "s.toml",
        "count = 1\n[read]\noutput = \"redis://:hunter2@127.0.0.1:1/0\"\n",
    );
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run(bin().args(["config", "check"]).arg(&secret));
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("{}:3: key \"output\"", secret.display()))
            && e.contains("password-file"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "the password is never printed: {e}");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = run(bin().args(["config", "check"]).arg(&secret));
    assert_eq!(stderr(&out), "", "no warning at mode 0600");
}

/// Every variable of the env example is one the CLI reads (so a typo there is caught).
#[test]
fn the_env_example_names_only_known_variables() {
    use clap::CommandFactory;
    fn envs(cmd: &clap::Command, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            if let Some(e) = a.get_env() {
                out.push(e.to_string_lossy().into_owned());
            }
        }
        for s in cmd.get_subcommands() {
            envs(s, out);
        }
    }
    let mut known = Vec::new();
    envs(&netpipe_fast::cli::Cli::command(), &mut known);
    let text = fs::read_to_string(common::root().join("scripts/netpipe-fast.env")).unwrap();
    let mut seen = 0;
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !key.is_empty() {
            assert!(
                known.contains(&key.to_owned()),
                "{key} is read by no option"
            );
            seen += 1;
        }
    }
    assert!(seen >= 8, "the original's variables are there ({seen})");
}

fn man_text(page: &Path) -> String {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P", "-c", "-P", "-b", "-P", "-u"])
        .arg(page)
        .output()
        .expect("run groff (scripts/test.sh installs groff-base)");
    assert!(out.status.success(), "groff {page:?}: {}", stderr(&out));
    // "can't break line" warnings (a long word in a narrow column) are typesetting, not
    // errors in the page.
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("error"),
        "{}",
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The man pages render, the main page names every visible subcommand, each subcommand has
/// its own page with its options.
#[test]
fn man_pages_render_and_cover_every_subcommand() {
    let dir = TempDir::new("np-ops", "man");
    let man1 = dir.path("man1");
    let out = run(bin().args(["generate", "man"]).arg(&man1));
    assert!(out.status.success(), "{}", stderr(&out));
    let main = man_text(&man1.join("netpipe-fast.1"));
    for sub in [
        "read", "capture", "replay", "dataset", "send", "listen", "record", "config",
    ] {
        assert!(
            main.contains(&format!("netpipe-fast-{sub}(1)")),
            "{sub} missing from netpipe-fast(1)"
        );
        let page = man_text(&man1.join(format!("netpipe-fast-{sub}.1")));
        assert!(page.contains("SYNOPSIS") && page.contains(&format!("netpipe-fast-{sub}")));
    }
    let capture = man_text(&man1.join("netpipe-fast-capture.1"));
    for opt in [
        "--iface",
        "--workers",
        "--when-full",
        "--config",
        "CAP_DEVICE",
    ] {
        assert!(
            capture.contains(opt),
            "{opt} missing from netpipe-fast-capture(1)"
        );
    }
    assert!(man_text(&man1.join("netpipe-fast-dataset-prepare.1")).contains("--label-above"));
    // man(1) finds and formats it too, where man-db is installed.
    if harness::command_succeeds("man", &["--version"]) {
        let out = Command::new("man")
            .args(["-l", "-Tutf8"])
            .arg(man1.join("netpipe-fast-read.1"))
            .output()
            .expect("man -l");
        assert!(out.status.success(), "{}", stderr(&out));
        // Bold and underline come as overstrikes (X BACKSPACE X): keep the last of each.
        let text = String::from_utf8_lossy(&out.stdout);
        let mut plain = String::new();
        for c in text.chars() {
            if c == '\u{8}' {
                plain.pop();
            } else {
                plain.push(c);
            }
        }
        assert!(plain.contains("--read-file"), "{plain}");
    }
    assert!(!man1.join("netpipe-fast-generate.1").exists(), "hidden");
}

fn completion(shell: &str) -> String {
    let out = run(bin().args(["generate", "completions", shell]));
    assert!(out.status.success(), "{shell}: {}", stderr(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// bash: the script parses and completing `netpipe-fast re` offers read, record, replay;
/// `netpipe-fast capture --when-full ` offers the three modes. zsh and fish: non-empty and
/// naming the subcommands (their syntax is checked when the shells are installed).
#[test]
fn shell_completions_complete_subcommands_and_values() {
    let dir = TempDir::new("np-ops", "compl");
    let bash = dir.path("netpipe-fast.bash");
    fs::write(&bash, completion("bash")).unwrap();
    assert!(harness::command_succeeds(
        "bash",
        &["-n", bash.to_str().unwrap()]
    ));
    let complete = |words: &str| -> Vec<String> {
        let script = format!(
            "source {}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
             read -ra COMP_WORDS <<< \"$COMP_LINE\"; \
             [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _netpipe__fast netpipe-fast \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let mut subs = complete("netpipe-fast re");
    subs.sort();
    assert_eq!(subs, ["read", "record", "replay"]);
    let mut modes = complete("netpipe-fast capture --when-full ");
    modes.sort();
    assert_eq!(modes, ["block", "drop", "spool"]);
    for shell in ["zsh", "fish"] {
        let text = completion(shell);
        for sub in ["read", "capture", "record", "config"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
        let path = dir.path(&format!("c.{shell}"));
        fs::write(&path, &text).unwrap();
        if harness::command_succeeds(shell, &["-c", "true"]) {
            assert!(
                harness::command_succeeds(shell, &["-n", path.to_str().unwrap()]),
                "{shell} -n"
            );
        }
    }
}

/// scripts/install.sh into a DESTDIR: binary, one man page per subcommand, the three
/// completions, the unit pointing at the installed binary, and the example settings (kept
/// when present).
#[test]
fn install_script_stages_everything() {
    let dir = TempDir::new("np-ops", "install");
    let stage = dir.path("stage");
    let install = || {
        let out = Command::new("bash")
            .arg(common::root().join("scripts/install.sh"))
            .env("NETPIPE_BIN", env!("CARGO_BIN_EXE_netpipe-fast"))
            .env("DESTDIR", &stage)
            .env("PREFIX", "/opt/np")
            .output()
            .expect("run install.sh");
        assert!(out.status.success(), "{}", stderr(&out));
    };
    install();
    let at = |p: &str| stage.join(p.trim_start_matches('/'));
    for f in [
        "/opt/np/bin/netpipe-fast",
        "/opt/np/share/man/man1/netpipe-fast.1",
        "/opt/np/share/man/man1/netpipe-fast-capture.1",
        "/opt/np/share/man/man1/netpipe-fast-dataset-prepare.1",
        "/opt/np/share/bash-completion/completions/netpipe-fast",
        "/opt/np/share/zsh/site-functions/_netpipe-fast",
        "/opt/np/share/fish/vendor_completions.d/netpipe-fast.fish",
        "/etc/netpipe-fast/netpipe-fast.toml",
        "/etc/netpipe-fast/netpipe-fast.env",
    ] {
        assert!(at(f).is_file(), "{f} not installed");
    }
    assert_eq!(
        fs::metadata(at("/etc/netpipe-fast/netpipe-fast.env"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    let unit = fs::read_to_string(at("/etc/systemd/system/netpipe-fast.service")).unwrap();
    assert!(unit.contains("ExecStart=/opt/np/bin/netpipe-fast capture --config"));
    // The operator's settings survive a second install.
    fs::write(at("/etc/netpipe-fast/netpipe-fast.toml"), "count = 1\n").unwrap();
    install();
    assert_eq!(
        fs::read_to_string(at("/etc/netpipe-fast/netpipe-fast.toml")).unwrap(),
        "count = 1\n"
    );
}

/// The unit's own settings, as the issue asks (a refactor that drops one fails here).
#[test]
fn the_unit_runs_with_least_privilege() {
    let unit = fs::read_to_string(common::root().join("scripts/netpipe-fast.service")).unwrap();
    let values = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "netpipe-fast"),
        ("CapabilityBoundingSet", "CAP_NET_RAW CAP_NET_ADMIN"),
        ("AmbientCapabilities", "CAP_NET_RAW CAP_NET_ADMIN"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("EnvironmentFile", "-/etc/netpipe-fast/netpipe-fast.env"),
        ("Environment", "XDG_STATE_HOME=/var/lib/private"),
    ] {
        assert_eq!(values(key), [want], "{key}");
    }
    assert!(values("User").is_empty() && !unit.contains("--user"));
}

/// `systemd-analyze verify` on the unit (its ExecStart pointed at the built binary, the man
/// pages it documents made and put on MANPATH). Skipped, with a line, where systemd-analyze
/// is not installed: a container without systemd is no reason to fail, so this is not a live
/// test and NETPIPE_REQUIRE_LIVE does not make it fail (scripts/test.sh installs systemd's
/// tools where apt can, so CI runs it).
#[test]
fn systemd_analyze_verifies_the_unit() {
    if !harness::command_succeeds("systemd-analyze", &["--version"]) {
        common::note_skip("skipping systemd-analyze verify: systemd-analyze is not installed");
        return;
    }
    let dir = TempDir::new("np-ops", "verify");
    let unit = fs::read_to_string(common::root().join("scripts/netpipe-fast.service")).unwrap();
    let path = dir.path("netpipe-fast.service");
    fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/netpipe-fast",
            env!("CARGO_BIN_EXE_netpipe-fast"),
        ),
    )
    .unwrap();
    let man = dir.path("man");
    let out = run(bin().args(["generate", "man"]).arg(man.join("man1")));
    assert!(out.status.success());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", &man)
        .output()
        .expect("systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        stderr(&out)
    );
    // A unit with a typo does fail (so the check above can fail).
    fs::write(&path, unit.replace("NoNewPrivileges=", "NoNewPrivilege=")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoNewPrivilege"),
        "{}",
        stderr(&out)
    );
}

/// The unit's way of running, for real: in a namespace of our own, the capture runs as a
/// user other than root holding only the ambient CAP_NET_RAW and CAP_NET_ADMIN (what
/// `AmbientCapabilities=` gives a `DynamicUser=`), without `--user`, with the shipped TOML
/// file, the env example's variables and XDG_STATE_HOME as the unit sets it (a directory laid
/// out as systemd lays out /var/lib/private). It captures the replayed frames into Redis and
/// its spool directory is made under the state directory, owned by that user.
#[test]
fn the_service_settings_capture_as_a_non_root_user_with_ambient_capabilities() {
    if !harness::live_available(
        "service capture test",
        &[(
            "setpriv",
            &["--version"],
            "setpriv (util-linux) is not installed",
        )],
    ) {
        return;
    }
    let pair = NetnsPair::new("np-ops", "svc", None);
    // Under target/tmp: every directory above it belongs to root and is not writable by
    // others, as /var/lib is (a /tmp path would make the spool refuse, rightly).
    let scratch_dir = TempDir::at(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("svc")));
    let scratch = scratch_dir.0.clone();
    let private = scratch.join("private");
    let state = private.join("netpipe-fast");
    fs::create_dir_all(&state).unwrap();
    fs::set_permissions(&scratch, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(Command::new("chown")
        .args(["nobody:nogroup"])
        .arg(&state)
        .status()
        .unwrap()
        .success());
    // The binary where nobody can run it; the config owned by root, mode 0644, as installed.
    let exe = scratch.join("netpipe-fast");
    fs::copy(env!("CARGO_BIN_EXE_netpipe-fast"), &exe).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let toml = scratch.join("netpipe-fast.toml");
    let shipped = fs::read_to_string(common::root().join("scripts/netpipe-fast.toml")).unwrap();
    fs::write(&toml, format!("{shipped}count = 20\nfilter = \"udp\"\n")).unwrap();
    fs::set_permissions(&toml, fs::Permissions::from_mode(0o644)).unwrap();
    // 20 UDP frames of the fixture, replayed from A.
    let frames = scratch.join("frames.pcap");
    let out = run(bin()
        .args(["read", FIXTURE, "-q", "-c", "20", "-w"])
        .arg(&frames)
        .arg("udp"));
    assert!(out.status.success(), "{}", stderr(&out));

    // The broker in the capture's namespace (a namespace has its own loopback).
    let redis = NsRedis::start(&pair.b, &scratch);
    let queue = unique("svc_queue");
    // The env example's variables, with this test's interface, broker and queue.
    let env_text = fs::read_to_string(common::root().join("scripts/netpipe-fast.env")).unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pair.b, "setpriv"])
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .args(["--inh-caps", "+net_raw,+net_admin"])
        .args(["--ambient-caps", "+net_raw,+net_admin"])
        .arg("env")
        .arg("-i")
        .arg("PATH=/usr/bin:/bin")
        .arg(format!("XDG_STATE_HOME={}", private.display()));
    for line in env_text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let (key, value) = line.split_once('=').unwrap();
        let value = match key {
            "CAP_DEVICE" => "vb".to_owned(),
            "FORWARD_BROKER_URL" => format!("redis://127.0.0.1:{}/0", NsRedis::PORT),
            "FORWARD_QUEUE" => queue.clone(),
            _ => value.to_owned(),
        };
        cmd.arg(format!("{key}={value}"));
    }
    cmd.arg(&exe)
        .args(["capture", "--config"])
        .arg(&toml)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut cap = Process::start(&mut cmd, DEADLINE);
    cap.wait_for_stderr("listening on vb");
    let out = Command::new("ip")
        .args(["netns", "exec", &pair.a])
        .arg(env!("CARGO_BIN_EXE_netpipe-fast"))
        .args(["replay", "-i", "va", "-q"])
        .arg(&frames)
        .output()
        .unwrap();
    assert!(out.status.success(), "replay: {}", stderr(&out));
    let (status, lines) = cap.finish();
    assert!(status.success(), "exit {status:?}: {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("switched to user")),
        "no --user switch: {lines:?}"
    );
    assert_eq!(redis.cli(&["LLEN", &queue]), "20", "{lines:?}");
    // The spool (opened at start, before connecting) was made under the state directory by
    // that user: the default state root works there, with no link on its path.
    let spool_root = state.join("spool");
    let owner = fs::metadata(&spool_root)
        .unwrap_or_else(|e| panic!("{spool_root:?}: {e}; {lines:?}"))
        .uid();
    let nobody = fs::metadata(&state).unwrap().uid();
    assert_ne!(nobody, 0);
    assert_eq!(owner, nobody);
}

/// The TOML example of README "Operations" is a good file.
#[test]
fn the_readme_config_example_checks() {
    let readme = fs::read_to_string(common::root().join("README.md")).unwrap();
    let ops = &readme[readme.find("## Operations").expect("Operations section")..];
    let start = ops.find("```toml\n").expect("a toml block") + 8;
    let block = &ops[start..start + ops[start..].find("```").unwrap()];
    let dir = TempDir::new("np-ops", "readme");
    let cfg = config_file(&dir, "readme.toml", block);
    let out = run(bin().args(["config", "check"]).arg(&cfg));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (9 settings)"));
}

/// A reader that goes away early (`| head -c 1`) ends the new printing commands quietly.
#[test]
fn closed_pipes_end_generate_and_config_check_quietly() {
    let bin_path = env!("CARGO_BIN_EXE_netpipe-fast");
    for args in [
        "generate completions bash",
        "generate completions zsh",
        "config check scripts/netpipe-fast.toml",
    ] {
        let script = format!("{bin_path} {args} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}");
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(common::root())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{args}");
        assert!(
            !stderr(&out).contains("panicked"),
            "{args}: {}",
            stderr(&out)
        );
    }
}
