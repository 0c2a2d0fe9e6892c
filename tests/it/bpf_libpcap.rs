//! Our classic-BPF interpreter against libpcap's own (`pcap_offline_filter`, through the `pcap`
//! crate) on every packet of the project's fixtures (pcaps/) and of tcpdump's test corpus
//! (../shared/corpus/tcpdump-tests/): for each file's link type and each expression of a list,
//! both compile the same program with libpcap, and both must give the same verdict on every
//! packet. Packets are read by libpcap too, so a file it cannot open is skipped (counted; most
//! must open). The first difference fails the test, naming the file, packet and expression.
//!
//! `BpfProgram::filter` gives libpcap the captured length as the wire length, so ours is run
//! with the same (`len` loads and `greater`/`less` then agree on what they see).

use crate::common;

use netpipe_fast::source::filter::BpfFilter;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const EXPRESSIONS: &[&str] = &[
    "ip",
    "ip6",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "arp",
    "vlan",
    "vlan and ip",
    "mpls",
    "pppoes",
    "tcp port 80",
    "udp and not port 53",
    "src port 53 or dst port 53",
    "portrange 1-1023",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn|tcp-ack",
    "tcp[13] = 0x18",
    "icmp[icmptype] = icmp-echo",
    "net 10.0.0.0/8",
    "src net 192.168.0.0/16 or dst net 172.16.0.0/12",
    "host 10.0.0.1",
    "greater 100",
    "less 64",
    "len >= 60 and len <= 1514",
    "ether host 00:00:0c:07:ac:01",
    "ether broadcast",
    "ether multicast",
    "ether proto 0x88cc",
    "ip multicast",
    "ip broadcast",
    "ip[6:2] & 0x1fff != 0",
    "ip[0] & 0xf > 5",
    "ip proto 47",
    "ip6 and tcp",
    "ip6[6] = 58",
    "not ip and not ip6",
    "udp[8:4] = 0",
    "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
];

/// `DLT_*` (what libpcap reports) to `LINKTYPE_*` (what `BpfFilter::compile` takes): equal
/// but for the few libpcap translates on Linux.
fn dlt_to_linktype(dlt: i32) -> u32 {
    match dlt {
        11 => 100,
        12 => 101,
        15 => 102,
        16 => 103,
        19 => 106,
        other => other as u32,
    }
}

fn capture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        })
        .collect();
    files.sort();
    files
}

/// Every packet libpcap reads from `path` (up to its first read error), and the link type.
fn packets(path: &Path) -> Option<(i32, Vec<Vec<u8>>)> {
    let mut cap = pcap::Capture::from_file(path).ok()?;
    let dlt = cap.get_datalink().0;
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        out.push(p.data.to_vec());
    }
    Some((dlt, out))
}

/// Both compiled programs for one link type and expression (`None`: neither compiles).
type Programs = Option<(pcap::BpfProgram, BpfFilter)>;

#[derive(Default)]
struct Tally {
    files: usize,
    opened: usize,
    packets: usize,
    verdicts: usize,
    accepted: usize,
    link_types: BTreeMap<i32, usize>,
    /// (link type, expression) pairs that both refused to compile.
    both_refused: usize,
    /// Pairs libpcap compiled and our kernel-style checker refused.
    checker_refused: Vec<String>,
}

fn compare_dir(dir: &Path, programs: &mut BTreeMap<(i32, &'static str), Programs>, t: &mut Tally) {
    for path in capture_files(dir) {
        t.files += 1;
        let Some((dlt, frames)) = packets(&path) else {
            continue;
        };
        t.opened += 1;
        t.packets += frames.len();
        *t.link_types.entry(dlt).or_default() += 1;
        for &expr in EXPRESSIONS {
            let pair = programs.entry((dlt, expr)).or_insert_with(|| {
                let oracle =
                    pcap::Capture::dead(pcap::Linktype(dlt)).and_then(|c| c.compile(expr, true));
                let ours = BpfFilter::compile(expr, dlt_to_linktype(dlt));
                match (oracle, ours) {
                    (Ok(o), Ok(f)) => Some((o, f)),
                    (Err(_), Err(_)) => {
                        t.both_refused += 1;
                        None
                    }
                    // Our checker refuses what the kernel's `bpf_check_classic` would (e.g. the
                    // negative offsets libpcap emits for some Juniper headers): stricter at
                    // compile time, never a different verdict. Counted and listed.
                    (Ok(_), Err(e)) if e.message().contains("rejected by the checker") => {
                        t.checker_refused.push(format!("DLT {dlt} {expr:?}"));
                        None
                    }
                    (o, f) => panic!(
                        "{expr:?} on DLT {dlt} ({}): libpcap {:?}, ours {:?}",
                        path.display(),
                        o.err(),
                        f.err()
                    ),
                }
            });
            let Some((oracle, ours)) = pair else {
                continue;
            };
            for (i, frame) in frames.iter().enumerate() {
                let want = oracle.filter(frame);
                let got = ours.matches(frame, frame.len() as u32);
                assert_eq!(
                    got,
                    want,
                    "{}: packet {} (of {}), DLT {dlt}, filter {expr:?}: ours {got}, libpcap \
                     {want}; first bytes {:02x?}",
                    path.display(),
                    i + 1,
                    frames.len(),
                    &frame[..frame.len().min(64)]
                );
                t.verdicts += 1;
                t.accepted += usize::from(got);
            }
        }
    }
}

#[test]
fn interpreter_agrees_with_libpcap_on_the_fixtures_and_the_tcpdump_corpus() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut programs = BTreeMap::new();

    let mut fixtures = Tally::default();
    compare_dir(&root.join("pcaps"), &mut programs, &mut fixtures);
    assert!(fixtures.files >= 20, "pcaps/: {} files", fixtures.files);
    assert_eq!(
        fixtures.opened, fixtures.files,
        "libpcap opens every fixture"
    );
    assert!(fixtures.packets > 100, "{} packets", fixtures.packets);

    let corpus = root.join("../shared/corpus/tcpdump-tests");
    let required = std::env::var_os("CI").is_some()
        || std::env::var("NETPIPE_REQUIRE_LIVE").is_ok_and(|v| v == "1");
    let mut tally = Tally::default();
    if corpus.is_dir() {
        compare_dir(&corpus, &mut programs, &mut tally);
    } else {
        assert!(!required, "{} is missing", corpus.display());
        common::note_skip(&format!(
            "skipping the tcpdump corpus part: {} is missing",
            corpus.display()
        ));
    }
    if corpus.is_dir() {
        // Most of tcpdump's 830 files are pcap or pcapng libpcap reads.
        assert!(tally.files >= 800, "corpus: {} files", tally.files);
        assert!(
            tally.opened * 10 >= tally.files * 9,
            "libpcap opened only {} of {} corpus files",
            tally.opened,
            tally.files
        );
        assert!(tally.packets > 8_000, "{} corpus packets", tally.packets);
        assert!(
            tally.link_types.len() >= 20,
            "link types {:?}",
            tally.link_types
        );
    }
    let all = [&fixtures, &tally];
    let verdicts: usize = all.iter().map(|t| t.verdicts).sum();
    let accepted: usize = all.iter().map(|t| t.accepted).sum();
    // The comparison means something only if the filters both accept and reject.
    assert!(
        accepted * 20 > verdicts && accepted * 20 < verdicts * 19,
        "{accepted} of {verdicts} verdicts accepted"
    );
    let compiled = programs.values().filter(|p| p.is_some()).count();
    println!(
        "bpf differential: {} + {} files ({} + {} opened), {} + {} packets, {} link types, \
         {compiled} programs compiled by both ({} refused by both), {verdicts} verdicts \
         ({accepted} accepted), 0 differences; refused by our checker only: {:?}",
        fixtures.files,
        tally.files,
        fixtures.opened,
        tally.opened,
        fixtures.packets,
        tally.packets,
        fixtures
            .link_types
            .keys()
            .chain(tally.link_types.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        fixtures.both_refused + tally.both_refused,
        [&fixtures.checker_refused[..], &tally.checker_refused[..]].concat(),
    );
    // The fixtures' link types (Ethernet, cooked, raw IP, ...) compile everything libpcap does.
    assert_eq!(fixtures.checker_refused, Vec::<String>::new());
}

/// libpcap is opened only when a filter expression is compiled: a run without a filter does
/// not load it (the loader's `LD_DEBUG=libs` trace names no libpcap; with a filter it does),
/// and in a mount namespace of the test's own where every libpcap file the loader knows is
/// replaced by /dev/null, `read` without a filter gives every message (a program linked
/// against libpcap would not even start) and with one fails with exit code 7 and one line
/// saying libpcap could not be loaded.
#[test]
fn libpcap_is_opened_only_for_filter_expressions() {
    use std::process::Command;
    let fixture = common::root().join(common::FIXTURE);
    let loaded = |filter: Option<&str>| -> bool {
        let out = Command::new(common::BIN)
            .args(["read", "-q", "-c", "1"])
            .arg(&fixture)
            .args(filter)
            .env("LD_DEBUG", "libs")
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        String::from_utf8_lossy(&out.stderr).contains("libpcap.so")
    };
    assert!(!loaded(None), "libpcap loaded by a run without a filter");
    assert!(
        loaded(Some("tcp")),
        "LD_DEBUG=libs traced no libpcap for a filter"
    );

    if !common::harness::live_available(
        "hiding libpcap in a mount namespace",
        &[
            (
                "unshare",
                &["-m", "true"],
                "unshare -m (util-linux, CAP_SYS_ADMIN) fails",
            ),
            ("ldconfig", &["-p"], "ldconfig is missing"),
        ],
    ) {
        return;
    }
    let dir = common::harness::TempDir::scratch("no_libpcap");
    let script = r#"
        set -u
        found=0
        for f in $(ldconfig -p | sed -n 's/^.*libpcap\.so[^ ]* .*=> //p'); do
            mount --bind /dev/null "$f" || exit 1
            found=1
        done
        [ "$found" = 1 ] || { echo "ldconfig -p lists no libpcap" >&2; exit 2; }
        "$2" read -q "$3" >"$1/plain.out" 2>"$1/plain.err"; echo $? >"$1/plain.rc"
        "$2" read -q "$3" tcp >"$1/filter.out" 2>"$1/filter.err"; echo $? >"$1/filter.rc"
    "#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&dir.0)
        .arg(common::BIN)
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = |name: &str| std::fs::read_to_string(dir.path(name)).unwrap();
    assert_eq!(text("plain.rc").trim(), "0", "{}", text("plain.err"));
    assert_eq!(text("plain.out").lines().count(), common::FIXTURE_MESSAGES);
    let err = text("filter.err");
    assert_eq!(text("filter.rc").trim(), "7", "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "netpipe-fast: bad filter expression \"tcp\": filter expressions need libpcap, \
             which could not be loaded ("
        ),
        "{err}"
    );
    assert!(text("filter.out").is_empty());
}
