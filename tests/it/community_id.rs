//! Community ID against another implementation: for every capture in `pcaps/`,
//! `tests/oracle/community_id.py` computes each packet's flow tuple from the scapy oracle's
//! dissection and its Community ID with Corelight's `communityid` package (PyPI), and checks
//! that `netpipe-fast read` printed the same `community_id` (and `community_id_outer` for
//! tunnelled packets), with the default seed and with seed 1. The specification's own test
//! vectors are checked by the unit tests of `src/encode/community_id.rs`.
//!
//! Needs target/communityid-venv (made by scripts/test.sh: a venv with the system site
//! packages, for Debian's python3-scapy, plus `communityid`); without it this test fails
//! rather than skips.

use crate::common::{capture_files, require_python_modules, root, run_oracle};

fn check(seed: u16) {
    let python = root().join("target/communityid-venv/bin/python");
    require_python_modules(
        &python,
        "communityid, scapy",
        "run scripts/test.sh (it makes target/communityid-venv with `python3 -m venv \
         --system-site-packages` and `pip install communityid`)",
    );
    let files = capture_files(&root().join("pcaps"));
    assert!(files.iter().any(|f| f.ends_with("tunnels.pcap")));
    let mut args = vec!["--seed".into(), seed.to_string().into()];
    args.extend(files.iter().map(|f| f.clone().into_os_string()));
    let (out, report) = run_oracle::<std::ffi::OsString>(&python, "community_id.py", &args);
    assert!(
        out.status.success(),
        "community IDs differ from the communityid package (seed {seed}):\n{report}"
    );
    // Every capture was compared, and IDs were actually computed.
    assert_eq!(report.matches("== ").count(), files.len(), "{report}");
    assert!(report.contains("RESULT: same"), "{report}");
}

#[test]
fn community_ids_equal_the_reference_implementation() {
    check(0);
}

#[test]
fn community_ids_with_seed_1_equal_the_reference_implementation() {
    check(1);
}
