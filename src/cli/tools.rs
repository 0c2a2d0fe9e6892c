//! The traffic tools' commands: `replay`, `send` and `listen` (src/tools/), with the glue
//! from their flags to the tools' own configurations.

use super::shared::stop_flag;
use super::{Job, Refusal};
use crate::exit;
use crate::tools::listen::{self, default_shutdown_hook, ListenConfig, Proto};
use crate::tools::replay::ReplayJob;
use crate::tools::{arp, default_message, icmp, seconds, send, send_exit, ToolError};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// `--preset` values: capture filters for the traffic of one tool (`arp`, `icmp`, `tcp`,
/// `ssh`, `telnet`, `udp`).
// A doc comment on a variant would become clap's help for that value and change
// `--help`; the values are described above and in the option's own help.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    Arp,
    Icmp,
    Tcp,
    Ssh,
    Telnet,
    Udp,
}

impl PresetArg {
    /// The capture filter preset.
    pub fn preset(self) -> crate::pipeline::capture::Preset {
        use crate::pipeline::capture::Preset;
        match self {
            PresetArg::Arp => Preset::Arp,
            PresetArg::Icmp => Preset::Icmp,
            PresetArg::Tcp => Preset::Tcp,
            PresetArg::Ssh => Preset::Ssh,
            PresetArg::Telnet => Preset::Telnet,
            PresetArg::Udp => Preset::Udp,
        }
    }
}

/// `replay` arguments.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Interface to send on (Ethernet).
    #[arg(short, long, value_name = "IFACE")]
    pub iface: String,

    /// Capture files (pcap or pcapng) whose Ethernet frames are sent, in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Send at most this many frames per second (paced by the clock, in batches of about a
    /// millisecond); default: as fast as the interface takes them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pps: Option<u64>,

    /// Send the files this many times; 0 means until SIGINT or SIGTERM.
    #[arg(long = "loop", default_value_t = 1, value_name = "N")]
    pub loops: u64,

    /// Do not print the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Notes after the exit codes of `replay --help`.
pub(super) const REPLAY_NOTES: &str = "\
The summary on stderr counts frames sent, bytes, elapsed time and rate, frames the kernel
rejected, frames not sent because the interface cannot carry them (shorter than an Ethernet
header, longer than the MTU allows), and frames skipped because they are not Ethernet.";

/// `send` arguments.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// What to send.
    #[command(subcommand)]
    pub kind: SendKind,
}

/// `send` subcommands.
#[derive(Subcommand, Debug)]
pub enum SendKind {
    /// One TCP message (MSG, or a timestamped test message), then half-close.
    Tcp(TcpSendArgs),
    /// One large TCP message: the message plus " large_random_data=" and 10,000 UUIDs.
    TcpLarge(TcpSendArgs),
    /// One UDP datagram to UDP_SEND_TO_HOST:UDP_SEND_TO_PORT.
    Udp(UdpSendArgs),
    /// ICMP echo requests (raw socket as root, else an unprivileged ping socket if allowed).
    Icmp(IcmpSendArgs),
    /// One ARP request on an interface (AF_PACKET: needs root), waiting for the reply.
    Arp(ArpSendArgs),
}

/// `send tcp` and `send tcp-large` arguments.
#[derive(Args, Debug)]
pub struct TcpSendArgs {
    /// Host to connect to (the original's was fixed at 127.0.0.1).
    #[arg(long, env = "TCP_SEND_TO_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port (the original's was fixed at 80).
    #[arg(long, env = "TCP_SEND_TO_PORT", default_value_t = 80)]
    pub port: u16,
    /// The message [default: "testing msg time=<now> - <uuid>"].
    #[arg(long, env = "MSG")]
    pub msg: Option<String>,
    /// Wait for and print the reply (up to 1024 bytes).
    #[arg(long, env = "NEED_RESPONSE")]
    pub need_response: bool,
    /// Give up connecting or waiting for the reply after this many seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

/// `send udp` arguments.
#[derive(Args, Debug)]
pub struct UdpSendArgs {
    /// Destination (the original's default 0.0.0.0 also meant this host).
    #[arg(long, env = "UDP_SEND_TO_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Destination port.
    #[arg(long, env = "UDP_SEND_TO_PORT", default_value_t = 17000)]
    pub port: u16,
    /// The message [default: "testing UDP msg time=<now> - <uuid>"].
    #[arg(long, env = "MSG")]
    pub msg: Option<String>,
    /// Wait for and print one reply datagram.
    #[arg(long, env = "NEED_RESPONSE")]
    pub need_response: bool,
    /// Give up waiting for the reply after this many seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

/// `send icmp` arguments.
#[derive(Args, Debug)]
pub struct IcmpSendArgs {
    /// Host to ping.
    #[arg(long, env = "ICMP_DST", default_value = "localhost")]
    pub dst: String,
    /// Echo requests to send.
    #[arg(long, env = "ICMP_COUNT", default_value_t = 3)]
    pub count: u32,
    /// ICMP message size in bytes (8-byte header included), as the original counted it.
    #[arg(long, env = "ICMP_PACKET_SIZE", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(8..=65_000))]
    pub size: u16,
    /// Seconds to wait for each reply.
    #[arg(
        long,
        env = "ICMP_TIMEOUT",
        default_value_t = 2.0,
        value_name = "SECONDS"
    )]
    pub timeout: f64,
    /// Milliseconds from one request to the next (the original paced one per second).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub interval_ms: u64,
    /// Print only the final line.
    #[arg(long, env = "ICMP_SILENT")]
    pub silent: bool,
}

/// `send arp` arguments.
#[derive(Args, Debug)]
pub struct ArpSendArgs {
    /// Interface to send on (the original's default was enp0s3; loopback here).
    #[arg(short, long, env = "ARP_INTERFACE", default_value = "lo")]
    pub iface: String,
    /// Address asked for [default: the interface's own IPv4 address, as the original].
    #[arg(long, env = "ARP_DST_IP")]
    pub dst_ip: Option<std::net::Ipv4Addr>,
    /// Ethernet destination [default: the interface's own MAC address, as the original].
    #[arg(long, env = "ARP_DST_MAC")]
    pub dst_mac: Option<String>,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub timeout: f64,
}

/// `listen` arguments.
#[derive(Args, Debug)]
pub struct ListenArgs {
    /// What to listen for.
    #[command(subcommand)]
    pub kind: ListenKind,
}

/// `listen` subcommands.
#[derive(Subcommand, Debug)]
pub enum ListenKind {
    /// Accept TCP connections one at a time: echo the first read back, read to the end, print
    /// one JSON line per message. Stops when the shutdown file exists.
    #[command(after_help = exit::help_after(LISTEN_HELP, exit::LISTEN_HELP))]
    Tcp(TcpListenArgs),
    /// Receive UDP datagrams, one JSON line each. Stops when the shutdown file exists.
    #[command(after_help = exit::help_after(LISTEN_HELP, exit::LISTEN_HELP))]
    Udp(UdpListenArgs),
}

/// `listen tcp` arguments.
#[derive(Args, Debug)]
pub struct TcpListenArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ON_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// TCP port (0: any free port, printed at start).
    #[arg(long, env = "LISTEN_ON_PORT", default_value_t = 80)]
    pub port: u16,
    /// listen(2) backlog.
    #[arg(long, env = "LISTEN_BACKLOG", default_value_t = 5)]
    pub backlog: i32,
    /// Bytes per read (the first read is echoed back).
    #[arg(long, env = "LISTEN_SIZE", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub size: u32,
    /// Seconds between checks of the shutdown file while idle.
    #[arg(
        long,
        env = "LISTEN_SLEEP",
        default_value_t = 0.5,
        value_name = "SECONDS"
    )]
    pub sleep: f64,
    /// Stop when this file exists [default: STATE_DIR/shutdown-listen-server-HOST-PORT].
    #[arg(long, env = "LISTEN_SHUTDOWN_HOOK", value_name = "FILE")]
    pub shutdown_hook: Option<PathBuf>,
    /// Stop after N messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Close a connection silent for this many seconds (what it sent is reported), so one
    /// idle peer cannot hold the clients queued behind it.
    #[arg(
        long,
        env = "LISTEN_IDLE_TIMEOUT",
        default_value_t = 5.0,
        value_name = "SECONDS"
    )]
    pub idle_timeout: f64,
}

/// `listen udp` arguments.
#[derive(Args, Debug)]
pub struct UdpListenArgs {
    /// Address to listen on.
    #[arg(long, env = "UDP_LISTEN_ON_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// UDP port (0: any free port, printed at start).
    #[arg(long, env = "UDP_LISTEN_ON_PORT", default_value_t = 17000)]
    pub port: u16,
    /// Accepted for the original's sake; datagrams are read whole (64 KiB buffer) whatever it
    /// says, so none is cut short.
    #[arg(long, env = "UDP_LISTEN_SIZE", default_value_t = 1024)]
    pub size: u32,
    /// Seconds between checks of the shutdown file while idle.
    #[arg(
        long,
        env = "UDP_LISTEN_SLEEP",
        default_value_t = 0.5,
        value_name = "SECONDS"
    )]
    pub sleep: f64,
    /// Stop when this file exists [default: STATE_DIR/udp-shutdown-listen-server-HOST-PORT].
    #[arg(long, env = "UDP_LISTEN_SHUTDOWN_HOOK", value_name = "FILE")]
    pub shutdown_hook: Option<PathBuf>,
    /// Stop after N datagrams.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

const LISTEN_HELP: &str = "\
Each message is one JSON line on stdout: {\"msg\": N, \"proto\", \"peer\", \"bytes\", \"data\"}
(data as UTF-8 text, invalid bytes replaced). The shutdown file is checked at least every
SLEEP seconds; if it exists at start the listener refuses to start, as the original did.
It counts only if owned by this user or root. STATE_DIR: /var/lib/netpipe-fast for root, else
$XDG_STATE_HOME/netpipe-fast or ~/.local/state/netpipe-fast (made 0700 at start); the
original's /tmp names could be created by any user. TCP connections are served one at a time;
one silent for --idle-timeout seconds is closed, so an idle peer cannot block the rest.
SIGINT/SIGTERM stop it too. The last line on stderr counts the messages and bytes received.";

pub(super) const SEND_HELP: &str = "\
Every send prints one JSON line on stdout saying what was sent (and what came back).
Defaults target this host only (127.0.0.1, localhost, lo).";

impl ReplayArgs {
    /// The job: the interface, the files and the pace.
    pub fn into_job(self) -> Result<ReplayRun, Refusal> {
        Ok(ReplayRun {
            job: ReplayJob {
                iface: self.iface,
                files: self.files,
                pps: self.pps,
                loops: self.loops,
            },
            quiet: self.quiet,
        })
    }
}

/// `replay`, ready to run.
#[derive(Debug)]
pub struct ReplayRun {
    job: ReplayJob,
    quiet: bool,
}

impl Job for ReplayRun {
    fn run(self) -> u8 {
        let stop = match stop_flag() {
            Ok(stop) => stop,
            Err(code) => return code,
        };
        let outcome = self.job.run(&stop);
        if let Some(e) = &outcome.error {
            say!("netpipe-fast: {e}");
        }
        if outcome.started && !self.quiet {
            say!("replay: {}", outcome.summary);
        }
        match outcome.error {
            Some(e) => u8::try_from(e.exit_code()).unwrap_or(exit::INTERNAL),
            None => exit::SUCCESS,
        }
    }
}

impl SendArgs {
    /// The job: what to send (checked when it runs, by the traffic tools).
    pub fn into_job(self) -> Result<SendRun, Refusal> {
        Ok(SendRun { args: self })
    }
}

/// `send`, ready to run.
#[derive(Debug)]
pub struct SendRun {
    args: SendArgs,
}

impl Job for SendRun {
    fn run(self) -> u8 {
        // A reader that went away (`| head -c 10`) has seen what it wanted: the send itself
        // has happened, so its exit code stands and nothing panics.
        let mut print = |line: &str| {
            let _ = writeln!(std::io::stdout(), "{line}");
        };
        match run_send(self.args, &mut print) {
            Ok(code) => {
                if code == send_exit::UNANSWERED {
                    say!("netpipe-fast: send: sent, but not every request was answered in time");
                }
                code
            }
            Err(e) => {
                say!("netpipe-fast: send: {e}");
                e.code
            }
        }
    }
}

/// Runs one `send`; `print` gets the JSON lines for stdout. `Ok` carries the exit code
/// (0, or 1 when icmp/arp got no answer).
fn run_send(args: SendArgs, print: &mut dyn FnMut(&str)) -> Result<u8, ToolError> {
    match args.kind {
        SendKind::Tcp(a) => run_send_tcp(a, false, print),
        SendKind::TcpLarge(a) => run_send_tcp(a, true, print),
        SendKind::Udp(a) => {
            let message = a.msg.unwrap_or_else(|| default_message("testing UDP msg"));
            let cfg = message_send(a.host, a.port, message, a.need_response, a.timeout)?;
            send_message(send::send_udp, &cfg, print)
        }
        SendKind::Icmp(a) => {
            let cfg = icmp::IcmpSend {
                dst: a.dst,
                count: a.count,
                size: a.size,
                timeout: seconds("--timeout", a.timeout)?,
                interval: Duration::from_millis(a.interval_ms),
            };
            let silent = a.silent;
            let outcome = icmp::send_icmp(&cfg, &mut |line| {
                if !silent {
                    print(line)
                }
            })?;
            print(&outcome.summary_line());
            Ok(if outcome.received() == outcome.results.len() {
                0
            } else {
                send_exit::UNANSWERED
            })
        }
        SendKind::Arp(a) => {
            let dst_mac = match a.dst_mac.as_deref() {
                None => None,
                Some(s) => Some(arp::parse_mac(s).ok_or_else(|| {
                    ToolError::new(
                        send_exit::USAGE,
                        format!("--dst-mac {s:?} is not a MAC address"),
                    )
                })?),
            };
            let cfg = arp::ArpSend {
                iface: a.iface,
                dst_ip: a.dst_ip,
                dst_mac,
                timeout: seconds("--timeout", a.timeout)?,
            };
            let outcome = arp::send_arp(&cfg)?;
            print(&outcome.json_line());
            Ok(if outcome.reply_from.is_some() {
                0
            } else {
                send_exit::UNANSWERED
            })
        }
    }
}

fn run_send_tcp(a: TcpSendArgs, large: bool, print: &mut dyn FnMut(&str)) -> Result<u8, ToolError> {
    let mut message = a.msg.unwrap_or_else(|| default_message("testing msg"));
    if large {
        message = send::large_message(&message);
    }
    let cfg = message_send(a.host, a.port, message, a.need_response, a.timeout)?;
    send_message(send::send_tcp, &cfg, print)
}

/// A TCP or UDP send from its flags (`timeout_s`: `--timeout` in seconds).
fn message_send(
    host: String,
    port: u16,
    message: String,
    need_response: bool,
    timeout_s: f64,
) -> Result<send::MessageSend, ToolError> {
    Ok(send::MessageSend {
        host,
        port,
        message: message.into_bytes(),
        need_response,
        timeout: seconds("--timeout", timeout_s)?,
    })
}

/// Sends `cfg` with `send_fn` (TCP or UDP) and prints what was sent; exit code 0.
fn send_message(
    send_fn: fn(&send::MessageSend) -> Result<send::Sent, ToolError>,
    cfg: &send::MessageSend,
    print: &mut dyn FnMut(&str),
) -> Result<u8, ToolError> {
    let sent = send_fn(cfg)?;
    print(&sent.json_line(&cfg.message));
    Ok(0)
}

impl ListenArgs {
    /// The job: the listener's configuration, or why the arguments cannot make one.
    pub fn into_job(self) -> Result<ListenRun, Refusal> {
        listen_config(self)
            .map(|cfg| ListenRun { cfg })
            .map_err(|e| Refusal::new(e.code, format!("netpipe-fast: listen: {e}")))
    }
}

/// The listener's configuration, the original's default shutdown file filled in.
fn listen_config(args: ListenArgs) -> Result<ListenConfig, ToolError> {
    let usage = |e: ToolError| ToolError::new(listen::exit::USAGE, e.message);
    Ok(match args.kind {
        ListenKind::Tcp(a) => ListenConfig {
            proto: Proto::Tcp,
            sleep: seconds("--sleep", a.sleep).map_err(usage)?,
            idle_timeout: seconds("--idle-timeout", a.idle_timeout).map_err(usage)?,
            shutdown_hook: match a.shutdown_hook {
                Some(h) => h,
                None => default_hook_ready(default_shutdown_hook(Proto::Tcp, &a.host, a.port))?,
            },
            host: a.host,
            port: a.port,
            backlog: a.backlog,
            read_bytes: a.size as usize,
            count: a.count,
        },
        ListenKind::Udp(a) => ListenConfig {
            proto: Proto::Udp,
            sleep: seconds("--sleep", a.sleep).map_err(usage)?,
            idle_timeout: listen::DEFAULT_IDLE_TIMEOUT,
            shutdown_hook: match a.shutdown_hook {
                Some(h) => h,
                None => default_hook_ready(default_shutdown_hook(Proto::Udp, &a.host, a.port))?,
            },
            host: a.host,
            port: a.port,
            backlog: 0,
            read_bytes: (a.size as usize).max(1),
            count: a.count,
        },
    })
}

/// The default shutdown file, its folder (the state directory) made 0700 if missing so that
/// the file can be created there.
fn default_hook_ready(hook: std::path::PathBuf) -> Result<std::path::PathBuf, ToolError> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = hook.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                ToolError::new(
                    listen::exit::USAGE,
                    format!("cannot make the state directory {}: {e}", dir.display()),
                )
            })?;
    }
    Ok(hook)
}

/// `listen`, ready to run.
#[derive(Debug)]
pub struct ListenRun {
    cfg: ListenConfig,
}

impl Job for ListenRun {
    fn run(self) -> u8 {
        let cfg = self.cfg;
        let stop = match stop_flag() {
            Ok(stop) => stop,
            Err(code) => return code,
        };
        let proto = if cfg.proto == Proto::Tcp {
            "tcp"
        } else {
            "udp"
        };
        let hook = cfg.shutdown_hook.display().to_string();
        let result = listen::listen(
            &cfg,
            &stop,
            &mut |addr| {
                say!("netpipe-fast: listening on {proto} {addr} (stops when {hook} exists)")
            },
            &mut |line| {
                let mut out = std::io::stdout().lock();
                // Flushed per message so a reader sees it at once, not when a buffer fills.
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            },
        );
        match result {
            Ok(summary) => {
                say!("netpipe-fast: {}", summary.line(&cfg));
                exit::SUCCESS
            }
            Err(e) => {
                say!("netpipe-fast: listen: {e}");
                e.code
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn send_and_listen_parse() {
        let cli =
            Cli::try_parse_from(["netpipe-fast", "send", "tcp-large", "--port", "9"]).unwrap();
        let Command::Send(SendArgs {
            kind: SendKind::TcpLarge(a),
        }) = cli.command
        else {
            panic!("not send tcp-large")
        };
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 9));
        let cli = Cli::try_parse_from(["netpipe-fast", "listen", "udp", "--count", "2"]).unwrap();
        let Command::Listen(ListenArgs {
            kind: ListenKind::Udp(u),
        }) = cli.command
        else {
            panic!("not listen udp")
        };
        assert_eq!((u.port, u.count), (17000, Some(2)));
        assert!(Cli::try_parse_from(["netpipe-fast", "send", "smtp"]).is_err());
    }
}
