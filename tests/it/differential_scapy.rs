//! Differential test against scapy 2.5: every capture in `pcaps/` is decoded by the
//! netpipe-fast binary (`netpipe-fast read FILE`) and by the scapy oracle
//! (`tests/oracle/scapy_json.py`), and `tests/oracle/compare.py` checks that both
//! print the same layers, fields and values for every packet (docs/FORMAT.md).
//!
//! The oracle needs Debian's `python3-scapy` under `/usr/bin/python3`; without it
//! this test fails rather than skips, so a green run always means "compared".

use crate::common::{capture_files, require_python_modules, root, run_oracle};
use std::path::Path;

const PYTHON: &str = "/usr/bin/python3";

#[test]
fn every_capture_decodes_like_scapy() {
    require_python_modules(
        Path::new(PYTHON),
        "scapy",
        "install Debian's python3-scapy (apt-get install python3-scapy; scripts/test.sh \
         installs it)",
    );
    let files = capture_files(&root().join("pcaps"));
    assert!(
        !files.is_empty(),
        "no *.pcap or *.pcapng files in {}: nothing to compare",
        root().join("pcaps").display()
    );

    let (out, report) = run_oracle(Path::new(PYTHON), "compare.py", &files);
    assert!(
        out.status.success(),
        "netpipe-fast and scapy decode differently ({}):\n{report}",
        out.status
    );
    println!("{report}");
}
