//! Process exit codes: one table, a name per code and one meaning per number.
//!
//! The capture engine's commands (`read`, `capture`, `replay`, `record`, `config check`)
//! share [`TABLE`]: a number means the same thing whichever of them returns it. The small
//! traffic and dataset tools (`send`, `listen`, `dataset prepare`) are separate programs of
//! the original and keep their own short tables ([`send`], [`listen`], [`dataset`]), as does
//! `record` for its one code of its own ([`record::REJECTED`]); a number means one thing
//! within each of those tables.
//!
//! Every command's `--help` lists its codes from the `*_HELP` lists below (through
//! [`help`]), and a test checks that each code is listed in a help text and in README.md and
//! used somewhere in the code, and that no code is written as a bare number.

/// One exit code: its number, its constant's name and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The exit status.
    pub code: u8,
    /// The constant's name as written in code (`send::CONNECT`).
    pub name: &'static str,
    /// What the code means, as the help text says it.
    pub meaning: &'static str,
}

/// Done; nothing lost.
pub const SUCCESS: u8 = 0;
/// The process could not set itself up: no SIGINT/SIGTERM handler, or a thread could not be
/// started.
pub const INTERNAL: u8 = 1;
/// Usage error: a bad flag, value, URL or configuration file, or a setting the kernel refuses.
pub const USAGE: u8 = 2;
/// An input file cannot be opened or read.
pub const INPUT_UNREADABLE: u8 = 3;
/// An input file is not pcap or pcapng.
pub const NOT_A_CAPTURE: u8 = 4;
/// An input capture is cut mid-record, corrupt or of a version we do not read.
pub const CAPTURE_DAMAGED: u8 = 5;
/// A link type (of a file or an interface) that is not supported.
pub const LINK_TYPE: u8 = 6;
/// A bad filter expression.
pub const FILTER: u8 = 7;
/// The output (or the `-w` file) failed or cannot be created, or its spool directory is
/// unsafe or in use.
pub const OUTPUT_FAILED: u8 = 8;
/// A broker could not be reached at start-up (refused, unknown host, timeout).
pub const BROKER_UNREACHABLE: u8 = 9;
/// A broker refused the credentials at start-up.
pub const BROKER_AUTH: u8 = 10;
/// TLS could not start (certificate not trusted, wrong host name, not a TLS port, or a
/// certificate/key file unreadable).
pub const TLS: u8 = 11;
/// No permission for a packet socket (CAP_NET_RAW).
pub const PERMISSION: u8 = 12;
/// No such interface, or it is (or went) down.
pub const NO_INTERFACE: u8 = 13;
/// Any other socket or ring failure.
pub const SOCKET: u8 = 14;
/// `record`: the CSV, archive or state cannot be written or resumed.
pub const RECORD_FILES: u8 = 15;
/// Not everything was delivered: packets or messages dropped, left in the spool, or a
/// damaged spool segment moved aside.
pub const UNDELIVERED: u8 = 16;
/// `record`: the input failed while running.
pub const INPUT_LOST: u8 = 17;
/// `capture --user`: no such user, the switch to it failed, or a capability is still held
/// after it. (Was 15 before, which `record` also used.)
pub const USER_SWITCH: u8 = 18;

/// The shared table, in number order.
pub const TABLE: &[Code] = &[
    code(SUCCESS, "SUCCESS", "done; nothing lost"),
    code(
        INTERNAL,
        "INTERNAL",
        "the process could not set itself up (signal handler, thread)",
    ),
    code(USAGE, "USAGE", "usage error"),
    code(
        INPUT_UNREADABLE,
        "INPUT_UNREADABLE",
        "an input file cannot be opened or read",
    ),
    code(
        NOT_A_CAPTURE,
        "NOT_A_CAPTURE",
        "an input file is not pcap or pcapng",
    ),
    code(
        CAPTURE_DAMAGED,
        "CAPTURE_DAMAGED",
        "an input capture is truncated or corrupt",
    ),
    code(LINK_TYPE, "LINK_TYPE", "unsupported link type"),
    code(
        FILTER,
        "FILTER",
        "bad filter expression, or libpcap (needed for one) cannot be loaded",
    ),
    code(
        OUTPUT_FAILED,
        "OUTPUT_FAILED",
        "the output failed or cannot be created, or its spool directory is unsafe",
    ),
    code(
        BROKER_UNREACHABLE,
        "BROKER_UNREACHABLE",
        "the broker cannot be reached at start-up",
    ),
    code(
        BROKER_AUTH,
        "BROKER_AUTH",
        "the broker refused the credentials",
    ),
    code(TLS, "TLS", "TLS could not start"),
    code(PERMISSION, "PERMISSION", "no permission (CAP_NET_RAW)"),
    code(
        NO_INTERFACE,
        "NO_INTERFACE",
        "no such interface, or it is down",
    ),
    code(SOCKET, "SOCKET", "any other socket or ring failure"),
    code(
        RECORD_FILES,
        "RECORD_FILES",
        "record: the CSV, archive or state cannot be written or resumed",
    ),
    code(
        UNDELIVERED,
        "UNDELIVERED",
        "not everything was delivered (dropped, left in the spool)",
    ),
    code(
        INPUT_LOST,
        "INPUT_LOST",
        "record: the input failed while running",
    ),
    code(
        USER_SWITCH,
        "USER_SWITCH",
        "capture --user: no such user, or the switch to it failed",
    ),
];

const fn code(code: u8, name: &'static str, meaning: &'static str) -> Code {
    Code {
        code,
        name,
        meaning,
    }
}

/// `record`'s own code.
pub mod record {
    use super::{code, Code};
    /// Done, but some messages were rejected (they are in `<csv>.rejected.jsonl`).
    pub const REJECTED: u8 = 4;
    /// `record`'s own table.
    pub const TABLE: &[Code] = &[code(
        REJECTED,
        "record::REJECTED",
        "done, but some messages were rejected",
    )];
}

/// `send`'s table.
pub mod send {
    use super::{code, Code};
    /// Sent, but no answer came.
    pub const UNANSWERED: u8 = 1;
    /// Usage error (the crate-wide [`super::USAGE`]).
    pub const USAGE: u8 = super::USAGE;
    /// The destination could not be resolved or connected.
    pub const CONNECT: u8 = 3;
    /// No permission (raw sockets need root or CAP_NET_RAW).
    pub const PERMISSION: u8 = 4;
    /// The send failed.
    pub const IO: u8 = 5;
    /// No such interface or address.
    pub const INTERFACE: u8 = 6;
    /// `send`'s table.
    pub const TABLE: &[Code] = &[
        code(super::SUCCESS, "SUCCESS", "sent"),
        code(UNANSWERED, "send::UNANSWERED", "sent, but unanswered"),
        code(USAGE, "send::USAGE", "usage error"),
        code(CONNECT, "send::CONNECT", "cannot resolve or connect"),
        code(PERMISSION, "send::PERMISSION", "no permission"),
        code(IO, "send::IO", "the send failed"),
        code(INTERFACE, "send::INTERFACE", "no such interface or address"),
    ];
}

/// `listen`'s table.
pub mod listen {
    use super::{code, Code};
    /// Usage error (the crate-wide [`super::USAGE`]).
    pub const USAGE: u8 = super::USAGE;
    /// The shutdown file existed at start.
    pub const HOOK_EXISTS: u8 = 3;
    /// The listening socket could not be bound.
    pub const BIND: u8 = 4;
    /// Receiving failed.
    pub const RECEIVE: u8 = 5;
    /// `listen`'s table.
    pub const TABLE: &[Code] = &[
        code(super::SUCCESS, "SUCCESS", "stopped"),
        code(USAGE, "listen::USAGE", "usage error"),
        code(
            HOOK_EXISTS,
            "listen::HOOK_EXISTS",
            "the shutdown file exists at start",
        ),
        code(BIND, "listen::BIND", "cannot bind"),
        code(RECEIVE, "listen::RECEIVE", "a receive error"),
    ];
}

/// `dataset prepare`'s table.
pub mod dataset {
    use super::{code, Code};
    /// Usage error (the crate-wide [`super::USAGE`]).
    pub const USAGE: u8 = super::USAGE;
    /// No input file matched.
    pub const NO_INPUT: u8 = 3;
    /// An input is not a CSV file the recorder wrote.
    pub const NOT_CSV: u8 = 4;
    /// Done, but some rows were skipped.
    pub const ROWS_SKIPPED: u8 = 5;
    /// The output could not be written.
    pub const WRITE: u8 = 6;
    /// `dataset prepare`'s table.
    pub const TABLE: &[Code] = &[
        code(super::SUCCESS, "SUCCESS", "done"),
        code(USAGE, "dataset::USAGE", "usage error"),
        code(
            NO_INPUT,
            "dataset::NO_INPUT",
            "no input matched, or one cannot be read",
        ),
        code(NOT_CSV, "dataset::NOT_CSV", "an input is not CSV"),
        code(
            ROWS_SKIPPED,
            "dataset::ROWS_SKIPPED",
            "done, but rows were skipped",
        ),
        code(WRITE, "dataset::WRITE", "an output cannot be written"),
    ];
}

/// One line of a command's help: a code and what it means for that command (`\n` starts a
/// continuation line).
pub type HelpLine = (u8, &'static str);

/// `read --help`.
pub const READ_HELP: &[HelpLine] = &[
    (SUCCESS, "done"),
    (
        USAGE,
        "usage error, a malformed --output URL, or a --metrics address that cannot be\n\
         listened on",
    ),
    (INPUT_UNREADABLE, "a file cannot be opened"),
    (
        NOT_A_CAPTURE,
        "not a capture file (a compressed one is named)",
    ),
    (CAPTURE_DAMAGED, "truncated or corrupt capture"),
    (LINK_TYPE, "unsupported link type"),
    (
        FILTER,
        "bad filter expression, or libpcap cannot be loaded (checked before any output\n\
         is created)",
    ),
    (
        OUTPUT_FAILED,
        "output (or the -w file) failed or cannot be created, or the spool directory is\n\
         unsafe (not owned by you or root, writable by group or others, a symbolic link on\n\
         its path) or in use",
    ),
    (
        BROKER_UNREACHABLE,
        "broker unreachable at start (refused, unknown host, timeout)",
    ),
    (BROKER_AUTH, "broker refused the credentials at start"),
    (
        TLS,
        "TLS could not start (rediss://, amqps://, --ssl-options): certificate not trusted,\n\
         wrong host name, not a TLS port, or a certificate/key file unreadable",
    ),
    (
        UNDELIVERED,
        "messages were dropped (--when-full drop, spool full, broker unreachable) or are\n\
         still in the spool at exit, or a damaged spool segment was moved aside (*.damaged);\n\
         the last line says how many and where (a code above, if one applies, is given\n\
         instead)",
    ),
];

/// `capture --help`.
pub const CAPTURE_HELP: &[HelpLine] = &[
    (SUCCESS, "stopped by --count, --duration, SIGINT or SIGTERM"),
    (
        INTERNAL,
        "no SIGINT/SIGTERM handler, or a thread could not be started",
    ),
    (
        USAGE,
        "usage error, a malformed --output URL, a ring setting the kernel refuses, or a\n\
         --metrics address that cannot be listened on",
    ),
    (LINK_TYPE, "the interface is not Ethernet"),
    (
        FILTER,
        "bad filter expression, or libpcap (needed for one) cannot be loaded",
    ),
    (
        OUTPUT_FAILED,
        "output (or the -w file) failed, or its spool directory is unsafe (as for read)",
    ),
    (
        BROKER_UNREACHABLE,
        "broker unreachable at start (as for read)",
    ),
    (BROKER_AUTH, "broker refused the credentials (as for read)"),
    (TLS, "TLS could not start (as for read)"),
    (
        PERMISSION,
        "no permission: live capture needs CAP_NET_RAW (run as root)",
    ),
    (NO_INTERFACE, "no such interface, or it is (or went) down"),
    (SOCKET, "any other socket or ring failure"),
    (
        UNDELIVERED,
        "packets or messages were dropped or left in the spool: packets the kernel dropped\n\
         (the summary's \"dropped by kernel\": a ring was full), or messages dropped or still\n\
         in the spool at exit (as for read); a closing line says how many and where",
    ),
    (
        USER_SWITCH,
        "--user names no user, or switching to it failed, or a capability is still held\n\
         after it (this was 15 before, which record also used)",
    ),
];

/// `replay --help`.
pub const REPLAY_HELP: &[HelpLine] = &[
    (SUCCESS, "every pass sent (or stopped by SIGINT/SIGTERM)"),
    (INTERNAL, "no SIGINT/SIGTERM handler"),
    (USAGE, "usage error"),
    (INPUT_UNREADABLE, "a file cannot be opened"),
    (NOT_A_CAPTURE, "not a capture file"),
    (CAPTURE_DAMAGED, "truncated or corrupt capture"),
    (LINK_TYPE, "the interface is not Ethernet"),
    (
        PERMISSION,
        "no permission: sending raw frames needs CAP_NET_RAW (run as root)",
    ),
    (NO_INTERFACE, "no such interface, or it is (or went) down"),
    (SOCKET, "any other socket or ring failure"),
];

/// `record --help`.
pub const RECORD_HELP: &[HelpLine] = &[
    (
        SUCCESS,
        "done (end of input, STOP_FILE, STOP_AFTER_NUM, SIGINT/SIGTERM)",
    ),
    (INTERNAL, "no SIGINT/SIGTERM handler"),
    (USAGE, "usage error or malformed input URL"),
    (INPUT_UNREADABLE, "input file cannot be opened"),
    (
        record::REJECTED,
        "done, but some messages were rejected (see <csv>.rejected.jsonl)",
    ),
    (
        BROKER_UNREACHABLE,
        "broker unreachable at start (as for read)",
    ),
    (BROKER_AUTH, "broker refused the credentials (as for read)"),
    (TLS, "TLS could not start (as for read)"),
    (
        RECORD_FILES,
        "the CSV, archive or state cannot be written, or exists without a state to resume,\n\
         or the state is not trusted (not ours, a link) or records rows of a CSV that is\n\
         missing",
    ),
    (
        INPUT_LOST,
        "the input failed while running (the snapshots taken are kept; messages not yet in\n\
         one stay with the broker, or are read again from a file, at the next start)",
    ),
];

/// `config check --help` (and `config --help`).
pub const CONFIG_HELP: &[HelpLine] = &[
    (SUCCESS, "the file can be used"),
    (USAGE, "it cannot (one line per problem)"),
];

/// `dataset prepare --help`.
pub const DATASET_HELP: &[HelpLine] = &[
    (SUCCESS, "done"),
    (
        dataset::USAGE,
        "usage error (bad pattern, unknown --label-column, non-numeric --fill-missing)",
    ),
    (
        dataset::NO_INPUT,
        "no input file matched, or an input cannot be read",
    ),
    (
        dataset::NOT_CSV,
        "an input is not CSV (empty, header not UTF-8)",
    ),
    (
        dataset::ROWS_SKIPPED,
        "done, but rows were skipped (reported above)",
    ),
    (
        dataset::WRITE,
        "an output cannot be written (nothing is replaced)",
    ),
];

/// `send --help`.
pub const SEND_HELP: &[HelpLine] = &[
    (
        SUCCESS,
        "sent (icmp: every request answered; arp: the reply came)",
    ),
    (
        send::UNANSWERED,
        "sent, but icmp requests went unanswered or no arp reply came in time",
    ),
    (send::USAGE, "usage error (bad address, MAC or number)"),
    (
        send::CONNECT,
        "cannot resolve or connect (connection refused, timeout)",
    ),
    (
        send::PERMISSION,
        "no permission: icmp falls back to a ping socket, arp needs root (CAP_NET_RAW)",
    ),
    (send::IO, "the send (or reading the reply) failed"),
    (
        send::INTERFACE,
        "no such interface, or it has no address to default to",
    ),
];

/// `listen --help`.
pub const LISTEN_HELP: &[HelpLine] = &[
    (SUCCESS, "stopped (shutdown file, --count, SIGINT/SIGTERM)"),
    (INTERNAL, "no SIGINT/SIGTERM handler"),
    (listen::USAGE, "usage error (bad address or number)"),
    (listen::HOOK_EXISTS, "the shutdown file exists at start"),
    (
        listen::BIND,
        "cannot bind (address in use, or a port below 1024 without root)",
    ),
    (
        listen::RECEIVE,
        "a receive error other than a peer resetting its connection",
    ),
];

/// A command, its help list and the tables its codes come from (the shared one first).
pub type Command = (
    &'static str,
    &'static [HelpLine],
    &'static [&'static [Code]],
);

/// Every command's help list with the tables its codes come from.
pub const COMMANDS: &[Command] = &[
    ("read", READ_HELP, &[TABLE]),
    ("capture", CAPTURE_HELP, &[TABLE]),
    ("replay", REPLAY_HELP, &[TABLE]),
    ("record", RECORD_HELP, &[TABLE, record::TABLE]),
    ("config", CONFIG_HELP, &[TABLE]),
    ("dataset prepare", DATASET_HELP, &[dataset::TABLE]),
    ("send", SEND_HELP, &[send::TABLE]),
    ("listen", LISTEN_HELP, &[TABLE, listen::TABLE]),
];

/// The "Exit codes:" block of a command's help: one code per line, continuation lines
/// indented under the text.
pub fn help(lines: &[HelpLine]) -> String {
    let mut s = String::from("Exit codes:");
    for (code, text) in lines {
        for (i, part) in text.split('\n').enumerate() {
            s.push('\n');
            if i == 0 {
                s.push_str(&format!("  {code:<2} {part}"));
            } else {
                s.push_str(&format!("     {part}"));
            }
        }
    }
    s
}

/// A command's help text after its options: `notes`, an empty line, then the exit codes.
pub fn help_after(notes: &str, lines: &[HelpLine]) -> String {
    format!("{notes}\n\n{}", help(lines))
}

/// A command's help text after its options: the exit codes, then `notes` (if any) after an
/// empty line.
pub fn help_with(lines: &[HelpLine], notes: &str) -> String {
    if notes.is_empty() {
        help(lines)
    } else {
        format!("{}\n\n{notes}", help(lines))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    fn all_tables() -> Vec<(&'static str, &'static [Code])> {
        vec![
            ("shared", TABLE),
            ("record", record::TABLE),
            ("send", send::TABLE),
            ("listen", listen::TABLE),
            ("dataset", dataset::TABLE),
        ]
    }

    #[test]
    fn one_meaning_per_number_in_each_table() {
        for (name, table) in all_tables() {
            let mut seen = BTreeSet::new();
            for c in table {
                assert!(seen.insert(c.code), "{name}: {} listed twice", c.code);
            }
        }
        // The shared table is in number order with no gaps, so a new code takes the next
        // number instead of reusing one.
        for (i, c) in TABLE.iter().enumerate() {
            assert_eq!(usize::from(c.code), i, "{}", c.name);
        }
        // record's own code is not one of the shared codes `record` also returns.
        let record_shared: BTreeSet<u8> = RECORD_HELP.iter().map(|l| l.0).collect();
        assert_eq!(
            record_shared
                .iter()
                .filter(|&&c| c == record::REJECTED)
                .count(),
            1
        );
    }

    #[test]
    fn every_help_line_is_in_its_tables_and_every_code_in_a_help() {
        let mut listed: BTreeMap<&str, BTreeSet<u8>> = BTreeMap::new();
        for (command, lines, tables) in COMMANDS {
            let mut seen = BTreeSet::new();
            for (code, text) in *lines {
                assert!(seen.insert(*code), "{command}: {code} listed twice");
                assert!(!text.is_empty());
                // A command's own table wins over the shared one (record's 4).
                let owner = tables
                    .iter()
                    .rev()
                    .find(|t| t.iter().any(|c| c.code == *code))
                    .unwrap_or_else(|| panic!("{command}: code {code} is in no table"));
                let name = owner.iter().find(|c| c.code == *code).unwrap().name;
                listed.entry(name).or_default().insert(*code);
            }
            // The help text shows every listed code at the start of a line.
            let text = help(lines);
            for (code, _) in *lines {
                assert!(
                    text.lines()
                        .any(|l| l.starts_with(&format!("  {code:<2} "))),
                    "{command}: {code} not in\n{text}"
                );
            }
        }
        for (table_name, table) in all_tables() {
            for c in table {
                assert!(
                    listed.contains_key(c.name),
                    "{table_name}: {} ({}) is in no command's help",
                    c.name,
                    c.code
                );
            }
        }
    }

    #[test]
    fn help_text_layout() {
        let text = help(&[(SUCCESS, "done"), (USAGE, "one\ntwo")]);
        assert_eq!(text, "Exit codes:\n  0  done\n  2  one\n     two");
    }

    /// README.md's exit code table lists every shared code with its number.
    #[test]
    fn readme_lists_every_shared_code() {
        let readme = std::fs::read_to_string(crate_dir().join("README.md")).unwrap();
        let rows: BTreeSet<u8> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| "))
            .filter_map(|l| l.split(" |").next())
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        for c in TABLE {
            assert!(
                rows.contains(&c.code),
                "README.md has no `| {} |` row ({})",
                c.code,
                c.name
            );
        }
        // The record-only and tool codes: `| command | code | meaning |` rows.
        let scoped: BTreeSet<(String, u8)> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| {
                let mut cells = l.split(" | ");
                let command = cells.next()?.trim_end_matches('`').to_owned();
                let code = cells.next()?.trim().parse().ok()?;
                Some((command, code))
            })
            .collect();
        for (command, table) in [
            ("record", record::TABLE),
            ("send", send::TABLE),
            ("listen", listen::TABLE),
            ("dataset prepare", dataset::TABLE),
        ] {
            for c in table {
                assert!(
                    scoped.contains(&(command.to_owned(), c.code)),
                    "README.md has no `| `{command}` | {} |` row ({})",
                    c.code,
                    c.name
                );
            }
        }
    }

    fn crate_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The non-test part of every .rs file under src/ but this one.
    fn sources() -> Vec<(PathBuf, String)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("src/exit.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Unit tests pin codes with literals on purpose; only the code counts.
                    let code = match text.find("#[cfg(test)]") {
                        Some(at) => text[..at].to_owned(),
                        None => text,
                    };
                    out.push((path, code));
                }
            }
        }
        let mut out = Vec::new();
        walk(&crate_dir().join("src"), &mut out);
        assert!(out.len() > 20, "src/ not found");
        out
    }

    /// Every constant is used outside this file: by its path (`exit::NAME`,
    /// `exit::send::NAME`, `send::NAME`), or through an alias of its module
    /// (`pub use crate::exit::send as send_exit;` then `send_exit::NAME`).
    #[test]
    fn every_code_is_used() {
        let sources = sources();
        let all: String = sources.iter().map(|(_, t)| t.as_str()).collect();
        for (_, table) in all_tables() {
            for c in table {
                if c.name == "SUCCESS" {
                    // ExitCode::SUCCESS says it too.
                    continue;
                }
                let mut paths = vec![format!("exit::{}", c.name)];
                if let Some((scope, name)) = c.name.split_once("::") {
                    paths.push(c.name.to_owned());
                    let alias_of = format!("pub use crate::exit::{scope} as ");
                    for line in all.lines() {
                        if let Some(alias) = line.trim().strip_prefix(&alias_of) {
                            paths.push(format!("{}::{name}", alias.trim_end_matches(';')));
                        }
                    }
                }
                assert!(
                    paths.iter().any(|p| all.contains(p.as_str())),
                    "{} ({}) is not used outside src/exit.rs (looked for {paths:?})",
                    c.name,
                    c.code
                );
            }
        }
    }

    /// No exit code is written as a bare number: `ExitCode::from(2)`, `StartError::new(9, ..)`,
    /// `ToolError::new(3, ..)`, `process::exit(1)`, or a number returned by a `fn exit_code`.
    #[test]
    fn no_bare_exit_codes() {
        let mut found = Vec::new();
        for (path, text) in sources() {
            for call in [
                "ExitCode::from(",
                "StartError::new(",
                "ToolError::new(",
                "process::exit(",
            ] {
                // The first argument, even on the next line.
                for (at, _) in text.match_indices(call) {
                    let arg = text[at + call.len()..].trim_start();
                    if arg.starts_with(|c: char| c.is_ascii_digit()) {
                        let line = text[..at].lines().count();
                        found.push(format!("{}:{line}: {call}{}", path.display(), &arg[..1]));
                    }
                }
            }
            // The bodies of `fn exit_code`: no `=> 7` arm and no bare `7` as the value.
            let mut rest = text.as_str();
            while let Some(at) = rest.find("fn exit_code(") {
                rest = &rest[at..];
                let end = rest.find("\n    }\n").unwrap_or(rest.len());
                for line in rest[..end].lines() {
                    let value = line.rsplit("=>").next().unwrap_or("").trim();
                    let value = value.trim_end_matches(',');
                    if value.parse::<i64>().is_ok() {
                        found.push(format!("{}: exit_code: {}", path.display(), line.trim()));
                    }
                }
                rest = &rest[end..];
            }
        }
        assert!(found.is_empty(), "bare exit codes:\n{}", found.join("\n"));
    }
}
