//! Command-line definitions (clap), with the original's environment variables as fallbacks.

use crate::sink::{OutputOptions, RedisFormat};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "netpipe-fast",
    version,
    about = "Turns network traffic into AntiNex-compatible JSON packet messages",
    long_about = "Turns network traffic into AntiNex-compatible JSON packet messages \
                  (one JSON object per packet, scapy layer and field names; see docs/FORMAT.md)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read pcap/pcapng files and write one JSON message per packet.
    #[command(after_help = READ_EXIT_CODES)]
    Read(ReadArgs),
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng), read in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Where to write: "-" or "stdout", "file:PATH" (JSON lines), "tcp://HOST:PORT" (JSON
    /// lines to a listener), "redis://[:PASSWORD@]HOST[:PORT][/DB]" (the Redis list --queue),
    /// "amqp://USER:PASS@HOST[:PORT][/VHOST]" (RabbitMQ: --exchange, --queue, --routing-key,
    /// publisher confirms).
    /// Broker outputs connect at start and, once running, reconnect forever.
    #[arg(
        short,
        long,
        env = "FORWARD_BROKER_URL",
        hide_env_values = true,
        default_value = "-",
        value_name = "DEST"
    )]
    pub output: String,

    /// What each Redis list element holds: kombu's envelope (readable by kombu and Celery
    /// consumers) or the packet JSON itself.
    #[arg(long, value_enum, default_value_t = RedisFormatArg::Kombu, value_name = "FORMAT")]
    pub redis_format: RedisFormatArg,

    /// The queue (Redis list) messages go to.
    #[arg(
        long,
        env = "FORWARD_QUEUE",
        default_value = "NEW_PACKETS",
        value_name = "NAME"
    )]
    pub queue: String,

    /// The exchange named in kombu envelopes and bindings.
    #[arg(
        long,
        env = "FORWARD_EXCHANGE",
        default_value = "NEW_PACKETS",
        value_name = "NAME"
    )]
    pub exchange: String,

    /// The routing key named in kombu envelopes and bindings.
    #[arg(
        long,
        env = "FORWARD_ROUTING_KEY",
        default_value = "NEW_PACKETS",
        value_name = "KEY"
    )]
    pub routing_key: String,

    /// Keep only packets matching this tcpdump filter expression (compiled by libpcap).
    #[arg(short, long, value_name = "EXPR")]
    pub filter: Option<String>,

    /// Stop after N packets (after the filter).
    #[arg(short, long, value_name = "N")]
    pub count: Option<u64>,

    /// Decoding threads; the output keeps file order whatever the number.
    #[arg(short, long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// The "source" field of every message.
    #[arg(
        long,
        env = "SOURCE_HOST",
        default_value = "localdev",
        value_name = "NAME"
    )]
    pub source_host: String,

    /// Do not print the summary at exit.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--redis-format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RedisFormatArg {
    Kombu,
    Raw,
}

impl ReadArgs {
    /// The broker settings of `--output`.
    pub fn output_options(&self) -> OutputOptions {
        OutputOptions {
            redis_format: match self.redis_format {
                RedisFormatArg::Kombu => RedisFormat::Kombu,
                RedisFormatArg::Raw => RedisFormat::Raw,
            },
            queue: self.queue.clone(),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
        }
    }
}

/// Exit codes of `read`, shown by `read --help`.
const READ_EXIT_CODES: &str = "\
Exit codes:
  0  done
  2  usage error, or a malformed --output URL
  3  a file cannot be opened      4  not a capture file
  5  truncated or corrupt capture  6  unsupported link type
  7  bad filter expression         8  output failed while writing
  9  broker unreachable at start (refused, unknown host, timeout)
  10 broker refused the credentials at start
  11 TLS output (rediss://, amqps://) not supported by this build yet

Once running, tcp://, redis:// and amqp:// outputs reconnect forever with capped backoff,
holding the output (back-pressure, nothing dropped), and send again what the lost connection
may not have delivered (redis: the one batch in flight; amqp: every unconfirmed message; tcp:
the last tcp_wmem+tcp_rmem bytes of whole batches), so a receiver may see those messages
twice; they are counted as resent.";
