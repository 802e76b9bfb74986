//! `canaryd check` on values serde accepts but that make no sense: each is
//! reported, all at once, at its key's `path:line:column`, and errors of the
//! alerts section point at the channel or route, not at 1:1.

use crate::support::{run_cli, write_tree};

fn check(config: &str) -> (i32, String) {
    let dir = write_tree(&[
        ("canaryd.yaml", config),
        ("canaries/.keep", ""),
        ("judges/.keep", ""),
    ]);
    let (code, _, err) = run_cli(&["check", "--config", "canaryd.yaml"], dir.path(), &[]);
    (code, err)
}

#[test]
fn out_of_range_values_are_reported_at_their_keys() {
    let (code, err) = check(
        "listen: 127.0.0.1:0\njudging:\n  floor_per_hour: 3\n  sample_rate: 7\ningest: { max_records: 0 }\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "canaryd.yaml:4:3: error: judging.sample_rate: found 7, expected a number from 0 to 1"
        ),
        "{err}"
    );
    assert!(
        err.contains("canaryd.yaml:5:11: error: ingest.max_records: found 0, expected at least 1"),
        "{err}"
    );
}

#[test]
fn alerts_errors_point_at_the_channel() {
    let (code, err) = check(
        "listen: 127.0.0.1:0\nalerts:\n  channels:\n    mail:\n      email: { host: mail.example.com, tls: none, from: a@b.example, to: [c@d.example] }\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("canaryd.yaml:4:5: error: alerts: channel mail: tls: none"),
        "{err}"
    );
}
