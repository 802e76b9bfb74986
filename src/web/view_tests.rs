use super::*;
use crate::signals::{Finding, Status};
use crate::store::{EmbeddingHour, JudgedResponse};

const DAY: i64 = 24 * HOUR_MS;
/// 2026-11-23 12:30 UTC.
const NOW: i64 = 1_795_437_000_000;

fn periods() -> Periods {
    Periods::new(NOW, 48, 24, 7)
}

fn hour(stream: &str, hour_ms: i64, n: i64, refusals: i64) -> HourRow {
    HourRow {
        stream: stream.into(),
        hour_ms,
        n,
        refusals,
        truncations: 0,
        tokens_sum: 100.0 * n as f64,
    }
}

/// Scores of `n` responses with the given mean and sd, as a roll-up row.
fn score(stream: &str, judge: &str, hour_ms: i64, n: i64, mean: f64, sd: f64) -> ScoreHourRow {
    let nf = n as f64;
    ScoreHourRow {
        stream: stream.into(),
        judge: judge.into(),
        hour_ms,
        n,
        sum: mean * nf,
        sumsq: nf * (sd * sd + mean * mean),
    }
}

/// A steady baseline: every baseline hour 100 responses, 5 refusals, score 4 ± 0.5.
fn steady(stream: &str, p: &Periods) -> (Vec<HourRow>, Vec<ScoreHourRow>) {
    let hours: Vec<i64> = (p.baseline_from_ms..p.window_from_ms)
        .step_by(HOUR_MS as usize)
        .collect();
    (
        hours.iter().map(|h| hour(stream, *h, 100, 5)).collect(),
        hours
            .iter()
            .map(|h| score(stream, "helpful", *h, 10, 4.0, 0.5))
            .collect(),
    )
}

fn event(scope: &str, at_ms: i64) -> ModelEvent {
    ModelEvent {
        id: 1,
        at_ms,
        scope: scope.into(),
        requested_model: "gpt-4o".into(),
        old_model: Some("gpt-4o-2024-08-06".into()),
        new_model: Some("gpt-4o-2024-11-20".into()),
        old_fingerprint: None,
        new_fingerprint: None,
    }
}

#[test]
fn periods_follow_from_now() {
    let p = periods();
    assert_eq!(p.end_ms % HOUR_MS, 0);
    assert!(p.end_ms > NOW && p.end_ms - NOW <= HOUR_MS);
    assert_eq!(p.end_ms - p.chart_from_ms, 48 * HOUR_MS);
    assert_eq!(p.end_ms - p.window_from_ms, DAY);
    assert_eq!(p.window_from_ms - p.baseline_from_ms, 7 * DAY);
    assert_eq!(p.data_from_ms(), p.baseline_from_ms);
    assert_eq!(p.chart_hours().count(), 48);
}

#[test]
fn moments_match_the_definition() {
    let (m, sd) = moments(4.0, 2.0 + 4.0 + 4.0 + 6.0, 4.0 + 16.0 + 16.0 + 36.0).unwrap();
    assert_eq!(m, 4.0);
    assert!((sd - 2f64.sqrt()).abs() < 1e-12);
    assert!(moments(0.0, 0.0, 0.0).is_none());
}

#[test]
fn provisional_health_is_full_when_normal_and_drops_with_refusals_and_scores() {
    let p = periods();
    let (mut hourly, mut scores) = steady("s", &p);
    let last = p.end_ms - HOUR_MS;
    let normal = last - 2 * HOUR_MS;
    let refusing = last - HOUR_MS;
    hourly.push(hour("s", normal, 100, 5));
    hourly.push(hour("s", refusing, 100, 30));
    scores.push(score("s", "helpful", normal, 10, 4.0, 0.5));
    scores.push(score("s", "helpful", last, 50, 3.3, 0.5));
    let h = provisional_health(&hourly, &scores, &p);
    let at = |t: i64| h.iter().find(|x| x.0 == t).unwrap().1;
    assert_eq!(at(normal), Some(100.0));
    // 30% vs 5% refusals: past three times the baseline, the full 20 points.
    assert_eq!(at(refusing), Some(80.0));
    // 4.0 → ~3.33 is more than one sd (0.5) down: the full 30 points.
    assert_eq!(at(last), Some(70.0));
    assert_eq!(
        at(p.chart_from_ms + DAY),
        None,
        "an hour without data is a gap"
    );
}

#[test]
fn embedding_similarity_is_cosine_to_the_baseline_centroid() {
    let p = periods();
    let mut hours: Vec<EmbeddingHour> = (p.baseline_from_ms..p.window_from_ms)
        .step_by(HOUR_MS as usize)
        .map(|h| EmbeddingHour {
            hour_ms: h,
            n: 2,
            sum: vec![2.0, 0.0],
        })
        .collect();
    let same = p.end_ms - 2 * HOUR_MS;
    let orthogonal = p.end_ms - HOUR_MS;
    hours.push(EmbeddingHour {
        hour_ms: same,
        n: 3,
        sum: vec![3.0, 0.0],
    });
    hours.push(EmbeddingHour {
        hour_ms: orthogonal,
        n: 1,
        sum: vec![0.0, 1.0],
    });
    let sim = embedding_similarity(&hours, &p);
    let at = |t: i64| sim.iter().find(|x| x.0 == t).unwrap().1;
    assert!((at(same).unwrap() - 1.0).abs() < 1e-12);
    assert!(at(orthogonal).unwrap().abs() < 1e-12);
    assert_eq!(at(p.chart_from_ms + DAY), None);
}

#[test]
fn length_bins_are_fractions_up_to_the_last_used_bin() {
    let bins = length_bins(&[(0, 1), (2, 3)], &[(1, 2), (2, 2)]);
    assert_eq!(bins.len(), 3);
    assert_eq!(bins[2].label, "50");
    assert_eq!(bins[0].current, 0.25);
    assert_eq!(bins[2].current, 0.75);
    assert_eq!(bins[1].baseline, 0.5);
    assert!(length_bins(&[], &[]).is_empty());
    assert_eq!(length_bins(&[(63, 1)], &[]).last().unwrap().label, "1575+");
}

fn alert(stream: &str, state: &str) -> AlertRow {
    AlertRow {
        id: 1,
        rule: "judge_score_drop".into(),
        stream: stream.into(),
        dimension: "helpful".into(),
        state: state.into(),
        severity: "warning".into(),
        value: 3.3,
        baseline: 4.0,
        threshold: 0.3,
        p_value: Some(0.0001),
        samples: 50,
        baseline_samples: 1680,
        summary: "helpful 4.0 → 3.3".into(),
        pending_ms: Some(NOW - HOUR_MS),
        firing_ms: Some(NOW - HOUR_MS),
        resolved_ms: None,
        last_eval_ms: NOW,
        last_notified_ms: None,
        resolve_pending: false,
        rev: 0,
    }
}

fn run(id: i64, started_ms: i64, passed: i64, failed: i64) -> RunRow {
    RunRow {
        id,
        suite: "facts".into(),
        suite_version: 1,
        content_hash: "h".into(),
        trigger: "schedule".into(),
        scheduled_for_ms: Some(started_ms),
        started_ms,
        finished_ms: Some(started_ms + 1000),
        status: "completed".into(),
        owner: "me".into(),
        cases_total: passed + failed,
        passed,
        failed,
        provider_errors: 0,
        note: None,
    }
}

#[test]
fn overview_rows_link_escaped_names_and_count_firing_alerts() {
    let p = periods();
    let hostile = "<script>alert(1)</script>";
    let (hourly, scores) = steady(hostile, &p);
    let mut d = OverviewData {
        streams: vec![hostile.into(), "chat/support v2".into()],
        hourly,
        scores,
        latest_events: vec![event("stream:chat/support v2", NOW - 2 * HOUR_MS)],
        suites: vec![(
            "facts".into(),
            vec![run(2, NOW - HOUR_MS, 3, 1), run(1, NOW - 2 * HOUR_MS, 4, 0)],
        )],
        ..Default::default()
    };
    let v = build_overview(&d, &p);
    assert_eq!(
        v.streams[0].href,
        "/streams/%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
    );
    assert_eq!(v.streams[1].href, "/streams/chat%2Fsupport%20v2");
    assert_eq!(v.streams[0].firing, None, "alerting not installed");
    assert!(!v.alerts_installed);
    assert_eq!(v.streams[0].last_change, "none recorded");
    assert_eq!(
        v.streams[1].last_change,
        "gpt-4o-2024-08-06 → gpt-4o-2024-11-20 (2h ago)"
    );
    assert_eq!(v.suites[0].health.text, "75", "latest run: 3 of 4 passed");
    assert_eq!(v.suites[0].health.class, "warn");
    assert!(v.suites[0].spark.contains("<path"), "two runs draw a line");
    assert!(v.health_source.starts_with("provisional"));

    d.alerts = Some(vec![
        alert(hostile, "firing"),
        alert(hostile, "resolved"),
        alert("suite:facts", "firing"),
    ]);
    d.health = Some(vec![HealthPoint {
        stream: "chat/support v2".into(),
        at_ms: NOW - HOUR_MS,
        score: 55.0,
    }]);
    let v = build_overview(&d, &p);
    assert_eq!(v.streams[0].firing, Some(1));
    assert_eq!(v.streams[1].firing, Some(0));
    assert_eq!(v.suites[0].firing, Some(1));
    assert_eq!(v.firing_total, 2);
    assert_eq!(v.streams[1].health.text, "55", "the detectors' score wins");
    assert_eq!(v.health_source, "detectors");
}

#[test]
fn stream_view_has_a_chart_per_judge_with_band_markers_and_links() {
    let p = periods();
    let (mut hourly, mut scores) = steady("s", &p);
    let last = p.end_ms - HOUR_MS;
    hourly.push(hour("s", last, 40, 2));
    scores.push(score("s", "helpful", last, 10, 3.0, 0.5));
    scores.push(score("s", "grounded", last, 10, 4.5, 0.2));
    let d = StreamData {
        stream: "s".into(),
        hourly,
        scores,
        length_current: vec![(0, 5), (1, 5)],
        length_baseline: vec![(0, 10)],
        events: vec![event("stream:s", last)],
        annotations: vec![
            crate::store::Annotation {
                id: 1,
                stream: "s".into(),
                kind: "deploy".into(),
                text: "v2 \"><script>x</script>".into(),
                ts_ms: last - HOUR_MS,
                source: "api".into(),
                created_ms: last,
            },
            crate::store::Annotation {
                id: 2,
                stream: "*".into(),
                kind: "index".into(),
                text: "reindex".into(),
                ts_ms: last,
                source: "cli".into(),
                created_ms: last,
            },
        ],
        worst: vec![JudgedResponse {
            response_id: 42,
            judge: "helpful".into(),
            score: 1.0,
            ts_ms: last,
            output: "<img src=x onerror=alert(1)>".into(),
        }],
        ..Default::default()
    };
    let v = build_stream(&d, &p);
    let titles: Vec<&str> = v.judge_charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["Judge: grounded", "Judge: helpful"]);
    let helpful = &v.judge_charts[1];
    assert!(helpful.svg.contains(r#"class="band""#), "{}", helpful.svg);
    assert!(
        helpful.caption.contains("baseline mean 4 ± 0.5"),
        "{}",
        helpful.caption
    );
    assert!(
        !v.judge_charts[0].svg.contains(r#"class="band""#),
        "no baseline, no band"
    );
    for svg in [&helpful.svg, &v.refusal_chart.svg, &v.health_chart.svg] {
        assert!(
            svg.contains(r#"class="marker""#),
            "model change marked: {svg}"
        );
    }
    // Annotations: drawn on every line chart in their own colour, text
    // escaped; listed latest first, the all-streams one marked.
    for svg in [&helpful.svg, &v.refusal_chart.svg, &v.health_chart.svg] {
        assert!(
            svg.contains(r#"class="marker annotation""#)
                && svg
                    .contains("<title>deploy: v2 &quot;&gt;&lt;script&gt;x&lt;/script&gt;</title>"),
            "annotation marked and escaped: {svg}"
        );
        assert!(!svg.contains("<script>"), "{svg}");
    }
    let listed: Vec<(&str, &str)> = v
        .annotations
        .iter()
        .map(|a| (a.kind.as_str(), a.scope.as_str()))
        .collect();
    assert_eq!(listed, [("index", "all streams"), ("deploy", "")]);
    assert!(v.length_chart.svg.contains(r#"class="current""#));
    assert!(v.embedding_chart.svg.contains("no data"));
    assert_eq!(v.worst[0].href, "/responses/42");
    assert_eq!(
        v.worst[0].snippet, "<img src=x onerror=alert(1)>",
        "escaped by the template"
    );
    assert_eq!(v.responses_window, 40);
    assert_eq!(v.events.len(), 1);
    assert_eq!(v.firing, None);
}

#[test]
fn findings_are_listed_firing_first() {
    use crate::signals::{Rule, Severity};
    let f = |rule, status, summary: &str| Finding {
        rule,
        stream: "s".into(),
        dimension: None,
        status,
        severity: Severity::Warning,
        at_ms: NOW - HOUR_MS,
        value: 0.0,
        baseline: 0.0,
        threshold: 0.0,
        p_value: None,
        samples: 0,
        baseline_samples: 0,
        summary: summary.into(),
        resolve: true,
    };
    let v = findings_view(
        &[
            f(Rule::JudgeScoreDrop, Status::Ok, "fine"),
            f(Rule::LengthDrift, Status::InsufficientData, "too few"),
            f(Rule::RefusalRateShift, Status::Firing, "<b>up</b>"),
        ],
        None,
        NOW,
    );
    let order: Vec<(&str, &str)> = v.iter().map(|x| (x.rule.as_str(), x.status)).collect();
    assert_eq!(
        order,
        [
            ("refusal_rate_shift", "firing"),
            ("judge_score_drop", "ok"),
            ("length_drift", "insufficient_data")
        ]
    );
    assert_eq!(v[0].when, "1h ago");
    assert_eq!(v[0].summary, "<b>up</b>", "escaped by the template");
}

#[test]
fn an_ok_verdict_whose_alert_still_fires_shows_firing_recovering() {
    use crate::signals::{Rule, Severity};
    let ok = Finding {
        rule: Rule::JudgeScoreDrop,
        stream: "s".into(),
        dimension: Some("helpful".into()),
        status: Status::Ok,
        severity: Severity::Warning,
        at_ms: NOW,
        value: 3.8,
        baseline: 4.0,
        threshold: 0.3,
        p_value: None,
        samples: 50,
        baseline_samples: 1680,
        summary: "helpful 4.00 → 3.80 over the recent hours".into(),
        resolve: false,
    };
    let length = Finding {
        rule: Rule::LengthDrift,
        dimension: None,
        ..ok.clone()
    };
    let alerts = [alert("s", "firing"), alert("other", "firing")];
    let v = findings_view(&[length.clone(), ok.clone()], Some(&alerts), NOW);
    assert_eq!(
        (v[0].rule.as_str(), v[0].status),
        ("judge_score_drop", "firing")
    );
    assert_eq!(v[0].label, "firing (recovering)");
    assert_eq!(
        (v[1].status, v[1].label.as_str()),
        ("ok", "ok"),
        "no alert: ok"
    );
    // Once the alert resolved, the verdict speaks.
    let v = findings_view(&[ok], Some(&[alert("s", "resolved")]), NOW);
    assert_eq!(v[0].label, "ok");
}
