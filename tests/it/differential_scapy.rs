//! Differential test against scapy 2.5: every capture in `pcaps/` is decoded by the
//! netpipe-fast binary (`netpipe-fast read FILE`) and by the scapy oracle
//! (`tests/oracle/scapy_json.py`), and `tests/oracle/compare.py` checks that both
//! print the same layers, fields and values for every packet (docs/FORMAT.md).
//!
//! The oracle needs Debian's `python3-scapy` under `/usr/bin/python3`; without it
//! this test fails rather than skips, so a green run always means "compared".

use std::path::Path;
use std::process::Command;

const PYTHON: &str = "/usr/bin/python3";

fn require_scapy() {
    let probe = Command::new(PYTHON).args(["-c", "import scapy"]).output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{PYTHON} cannot import scapy, which this differential test needs as its oracle: \
             install Debian's python3-scapy (apt-get install python3-scapy; scripts/test.sh \
             installs it).\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "cannot run {PYTHON} ({e}); this differential test needs it with scapy: install \
             Debian's python3 and python3-scapy (scripts/test.sh installs them)"
        ),
    }
}

#[test]
fn every_capture_decodes_like_scapy() {
    require_scapy();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = crate::common::capture_files(&root.join("pcaps"));
    assert!(
        !files.is_empty(),
        "no *.pcap or *.pcapng files in {}: nothing to compare",
        root.join("pcaps").display()
    );

    let out = Command::new(PYTHON)
        .arg(root.join("tests/oracle/compare.py"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_netpipe-fast"))
        .args(&files)
        .output()
        .expect("run tests/oracle/compare.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "netpipe-fast and scapy decode differently ({}):\n{report}",
        out.status
    );
    println!("{report}");
}
