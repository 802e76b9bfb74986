//! `canaryd check` on type errors and unresolvable secrets: each type error
//! names its field's dotted path, the value found and what was expected at
//! `path:line:column`, every part of a file is reported (not only the
//! first error), and the alert channels' and the sessions hook's secrets
//! are read as the notifier reads them, without printing a value.

use crate::support::{run_cli, write_tree};

fn check(files: &[(&str, &str)], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut tree = vec![("canaries/.keep", ""), ("judges/.keep", "")];
    tree.extend_from_slice(files);
    let dir = write_tree(&tree);
    run_cli(&["check", "--config", "canaryd.yaml"], dir.path(), envs)
}

#[test]
fn every_type_error_of_the_config_names_field_found_and_expected() {
    let (code, _, err) = check(
        &[(
            "canaryd.yaml",
            "listen: 127.0.0.1:0\njudging:\n  sample_rate: abc\ningest:\n  max_records: -3\nalerts:\n  channels:\n    mail:\n      email: { host: h, port: \"x\", from: a@b.example, to: [c@d.example] }\n",
        )],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let config: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("canaryd.yaml:"))
        .collect();
    assert_eq!(
        config,
        [
            "canaryd.yaml:3:16: error: judging.sample_rate: found abc, expected a number",
            "canaryd.yaml:5:16: error: ingest.max_records: found -3, expected a whole number from 0 to 18446744073709551615 (u64)",
            "canaryd.yaml:9:31: error: alerts.channels.mail.email.port: found \"x\", expected a whole number from 0 to 65535 (u16)",
        ],
        "{err}"
    );
}

#[test]
fn every_case_of_a_suite_reports_its_type_error_at_its_field() {
    let (code, _, err) = check(
        &[
            ("canaryd.yaml", "listen: 127.0.0.1:0\n"),
            (
                "canaries/s.yaml",
                "suite: s\nversion: [1]\ntargets: [pinned]\ncases:\n  - id: a\n    prompt: ok\n  - id: b\n    prompt: x\n    expect:\n      - contains: [hi]\n  - id: c\n    prompt:\n      text: x\n",
            ),
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let suite: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split_once("canaries/s.yaml:").map(|(_, rest)| rest))
        .collect();
    assert_eq!(
        suite,
        [
            "2:10: error: version: found a list, expected a single value (text or number)",
            "10:19: error: cases[1].expect[0].contains: found a list, expected a single value (text or number)",
            "13:7: error: cases[2].prompt: found a mapping, expected a single value (text or number)",
        ],
        "{err}"
    );
}

#[test]
fn alert_and_hook_secrets_are_resolved_without_printing_values() {
    let config = "listen: 127.0.0.1:0\nalerts:\n  channels:\n    mail:\n      email: { host: smtp.example.com, username: u, password: { file: smtp-password }, from: a@b.example, to: [c@d.example] }\n    team:\n      slack: { webhook_url: { env: CANARYD_TEST_UNSET_SLACK_URL } }\n    hook:\n      webhook: { url: \"http://127.0.0.1:9/\", headers: { Authorization: { env: CANARYD_TEST_UNSET_HOOK_TOKEN } } }\nsessions:\n  hook: { url: \"http://127.0.0.1:9/kill\", secret: { env: CANARYD_TEST_UNSET_KILL_SECRET } }\n";
    let (code, out, err) = check(&[("canaryd.yaml", config)], &[]);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "canaryd.yaml:4:5: error: alerts: channel mail: SMTP password: cannot read secret file",
        "canaryd.yaml:6:5: error: alerts: channel team: Slack webhook_url: environment variable CANARYD_TEST_UNSET_SLACK_URL",
        "canaryd.yaml:8:5: error: alerts: channel hook: header Authorization: environment variable CANARYD_TEST_UNSET_HOOK_TOKEN",
        "canaryd.yaml:11:3: error: sessions.hook secret: environment variable CANARYD_TEST_UNSET_KILL_SECRET",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // Given every secret, the same config passes and no value is printed.
    let (code, out2, err) = check(
        &[("canaryd.yaml", config), ("smtp-password", "pw-sekrit-1\n")],
        &[
            (
                "CANARYD_TEST_UNSET_SLACK_URL",
                "https://hooks.example/sekrit-2",
            ),
            ("CANARYD_TEST_UNSET_HOOK_TOKEN", "Bearer sekrit-3"),
            ("CANARYD_TEST_UNSET_KILL_SECRET", "sekrit-4"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!format!("{out}{out2}{err}").contains("sekrit"), "{err}");
}
