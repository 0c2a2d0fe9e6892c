//! Command-line definitions (clap), with the original's environment variables as fallbacks.

use clap::{Args, Parser, Subcommand};
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
    Read(ReadArgs),
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng), read in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Where to write: "-" or "stdout", or "file:PATH" (JSON lines).
    #[arg(short, long, default_value = "-", value_name = "DEST")]
    pub output: String,

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
