//! JA3 and JA4 of every ClientHello in `pcaps/tls.pcap`, checked against reference
//! implementations someone else wrote: Salesforce's `ja3` (PyPI `ja3`, on dpkt) and FoxIO's
//! JA4+ package (PyPI `ja4plus`), both installed by `scripts/test.sh` into
//! `target/fingerprint-venv`. Without that venv the test fails (it does not skip), so a green
//! run always means "compared".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One ClientHello as netpipe-fast reports it.
#[derive(Debug)]
struct Ours {
    sport: u64,
    time_us: u64,
    ja3: String,
    ja3_hash: String,
    ja4: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin(name: &str) -> PathBuf {
    let bin = root().join("target/fingerprint-venv/bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test.sh, which installs the reference JA3/JA4 \
         implementations (PyPI ja3 and ja4plus) into target/fingerprint-venv",
        bin.display()
    );
    bin
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn ours(pcap: &Path) -> Vec<Ours> {
    let text = run(Command::new(env!("CARGO_BIN_EXE_netpipe-fast"))
        .arg("read")
        .arg(pcap));
    let mut hellos = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let Some(ja3) = v.get("ja3") else { continue };
        let tcp = &v["data"]["tcp"];
        hellos.push(Ours {
            sport: tcp["sport"].as_u64().expect("tcp.sport"),
            time_us: v["time_ns"].as_u64().expect("time_ns") / 1000,
            ja3: ja3.as_str().expect("ja3 text").to_owned(),
            ja3_hash: v["ja3_hash"].as_str().expect("ja3_hash").to_owned(),
            ja4: v["ja4"].as_str().expect("ja4").to_owned(),
        });
    }
    hellos
}

/// Microseconds of the day from ja4plus's `2026-11-29T12:30:00.029230Z`.
fn micros_of_day(iso: &str) -> u64 {
    let time = iso
        .split('T')
        .nth(1)
        .expect("ISO time")
        .trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: u64 = parts.next().unwrap().parse().unwrap();
    let m: u64 = parts.next().unwrap().parse().unwrap();
    let (s, frac) = parts.next().unwrap().split_once('.').unwrap_or((time, "0"));
    let s: u64 = s.parse().unwrap();
    let us: u64 = format!("{frac:0<6}")[..6].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1_000_000 + us
}

/// JA4's ALPN rule for a first protocol id that does not start and end alphanumeric (hex
/// digits instead of the characters) is in FoxIO's specification (JA4.md, "ALPN Extension
/// Value") but not in ja4plus 1.4.0, which prints the characters; the unit test
/// `alpn_characters_as_the_spec_shows_them` checks the spec's own examples. Here the two
/// ALPN characters of such a hello are compared by that rule, the rest with ja4plus.
fn ja4_matches(ours: &str, reference: &str, first_alpn_odd: bool) -> bool {
    if !first_alpn_odd {
        return ours == reference;
    }
    let r = reference.as_bytes();
    let hex = |v: u8| b"0123456789abcdef"[usize::from(v)];
    ours.len() == reference.len()
        && ours[..8] == reference[..8]
        && ours[10..] == reference[10..]
        && ours.as_bytes()[8..10] == [hex(r[8] >> 4), hex(r[9] & 15)]
}

#[test]
fn ja3_and_ja4_equal_reference_implementations() {
    let pcap = root().join("pcaps/tls.pcap");
    let hellos = ours(&pcap);
    assert!(
        hellos.len() >= 6,
        "expected the six complete ClientHellos of tls.pcap to carry fingerprints, got {}",
        hellos.len()
    );

    // Salesforce ja3: IPv4 only (dpkt's reader), every port with -a.
    let ja3_out = run(Command::new(venv_bin("ja3")).args(["-a", "-j"]).arg(&pcap));
    let ja3_ref: Vec<serde_json::Value> = serde_json::from_str(&ja3_out).expect("ja3 JSON");
    let mut ja3_by_port: HashMap<u64, Vec<&serde_json::Value>> = HashMap::new();
    for r in &ja3_ref {
        ja3_by_port
            .entry(r["source_port"].as_u64().unwrap())
            .or_default()
            .push(r);
    }
    // ja4plus: IPv4 and IPv6.
    let ja4_out = run(Command::new(venv_bin("ja4plus"))
        .args(["analyze", "--format", "json", "--types", "ja4"])
        .arg(&pcap));
    let mut ja4_ref: HashMap<(u64, u64), String> = HashMap::new();
    for line in ja4_out.lines().filter(|l| !l.trim().is_empty()) {
        let r: serde_json::Value = serde_json::from_str(line).expect("ja4plus JSON line");
        ja4_ref.insert(
            (
                r["src_port"].as_u64().unwrap(),
                micros_of_day(r["timestamp"].as_str().unwrap()),
            ),
            r["fingerprint"].as_str().unwrap().to_owned(),
        );
    }

    let (mut ja3_compared, mut ja4_compared) = (0, 0);
    for h in &hellos {
        if let Some(refs) = ja3_by_port.get(&h.sport) {
            // dpkt's float timestamp: match within a microsecond or two.
            let t = h.time_us as f64 / 1e6;
            let r = refs
                .iter()
                .find(|r| (r["timestamp"].as_f64().unwrap() - t).abs() < 5e-6)
                .unwrap_or_else(|| panic!("ja3 reports no hello at {t} from port {}", h.sport));
            assert_eq!(h.ja3, r["ja3"].as_str().unwrap(), "JA3 text of {h:?}");
            assert_eq!(
                h.ja3_hash,
                r["ja3_digest"].as_str().unwrap(),
                "JA3 hash of {h:?}"
            );
            ja3_compared += 1;
        }
        let key = (h.sport, h.time_us % 86_400_000_000);
        let reference = ja4_ref
            .get(&key)
            .unwrap_or_else(|| panic!("ja4plus reports no hello for {h:?}"));
        let odd_alpn = !h.ja4[8..10]
            .bytes()
            .zip(reference[8..10].bytes())
            .all(|(a, b)| a == b)
            && !reference[8..10].bytes().all(|b| b.is_ascii_alphanumeric());
        assert!(
            ja4_matches(&h.ja4, reference, odd_alpn),
            "JA4 of {h:?}: ours {}, ja4plus {reference}",
            h.ja4
        );
        ja4_compared += 1;
    }
    assert!(ja3_compared >= 5, "only {ja3_compared} JA3 values compared");
    assert_eq!(ja4_compared, hellos.len());
    // Published reference: FoxIO's README shows Chrome's JA4 as this value, and the Chrome
    // shape of tls.pcap reproduces Chrome's cipher and extension lists.
    assert!(hellos
        .iter()
        .any(|h| h.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1"));
}
