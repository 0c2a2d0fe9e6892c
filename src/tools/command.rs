//! From parsed flags (`cli::SendArgs`, `cli::ListenArgs`) to a tool run: what `main.rs` calls.

use super::listen::{default_shutdown_hook, ListenConfig, Proto};
use super::{arp, default_message, icmp, seconds, send, send_exit, ToolError};
use crate::cli::{ListenArgs, ListenKind, SendArgs, SendKind, TcpSendArgs};
use std::time::Duration;

/// Runs one `send`; `print` gets the JSON lines for stdout. `Ok` carries the exit code
/// (0, or 1 when icmp/arp got no answer).
pub fn run_send(args: SendArgs, print: &mut dyn FnMut(&str)) -> Result<u8, ToolError> {
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

/// The listener's configuration, the original's default shutdown file filled in.
pub fn listen_config(args: ListenArgs) -> Result<ListenConfig, ToolError> {
    let usage = |e: ToolError| ToolError::new(super::listen::exit::USAGE, e.message);
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
            idle_timeout: super::listen::DEFAULT_IDLE_TIMEOUT,
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
                    super::listen::exit::USAGE,
                    format!("cannot make the state directory {}: {e}", dir.display()),
                )
            })?;
    }
    Ok(hook)
}
