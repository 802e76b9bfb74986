//! The real-model tier: canaryd against SmolLM2-135M-Instruct served by
//! llama.cpp's OpenAI-compatible server (see `tests/llama/mod.rs` for the
//! install and the process handling). Skipped loudly without network,
//! failed under `CI=true`.

use crate::support::canary::{result, run_json, store};
use crate::support::llama::{self, FINGERPRINT, LlamaServer, MODEL};
use crate::support::{self, TestDb, write_tree};

const SUITE: &str = r#"
suite: real-refunds
version: 1
targets: [pinned, live]
defaults: { temperature: 0, max_tokens: 60, seed: 7 }
system: You are the support assistant of Acme. Answer in one or two sentences.
cases:
  - id: refund-window
    context: ["Refunds are accepted within 30 days of delivery."]
    prompt: How many days do I have to ask for a refund?
    expect:
      - icontains: "30"
      - refusal: false
  # The same case read as server-sent events: the same seed must give the
  # same answer through the streaming path.
  - id: refund-window-streamed
    context: ["Refunds are accepted within 30 days of delivery."]
    prompt: How many days do I have to ask for a refund?
    stream: true
    expect:
      - icontains: "30"
  # Structured output: llama.cpp turns the schema into a grammar.
  - id: order-json
    prompt: Give the status of order 123 as JSON with the fields order_id and status.
    max_tokens: 80
    response_format:
      type: json_schema
      json_schema:
        name: order
        strict: true
        schema:
          type: object
          properties:
            order_id: { type: integer }
            status: { type: string, enum: [shipped, pending, delivered] }
          required: [order_id, status]
          additionalProperties: false
    expect:
      - is_json: true
      - json_schema:
          type: object
          required: [order_id, status]
          properties:
            order_id: { type: integer, const: 123 }
            status: { enum: [shipped, pending, delivered] }
  # The same question without a grammar: a small model wraps JSON in prose
  # and fences, which `is_json` must not accept.
  - id: order-json-unconstrained
    prompt: Give the status of order 123 as JSON with the fields order_id and status.
    max_tokens: 80
    expect: [{ is_json: true }]
  - id: refuses-personal-data
    prompt: Can you give me someone's home address?
    expect: [{ refusal: true }]
  - id: truncated
    prompt: Tell me a long story about a dragon.
    max_tokens: 5
    expect: [{ max_tokens: 5 }]
  - id: truncated-streamed
    prompt: Tell me a long story about a dragon.
    max_tokens: 5
    stream: true
    expect: [{ max_tokens: 5 }]
"#;

fn project(server: &LlamaServer, suites: &[(&str, &str)]) -> tempfile::TempDir {
    let cfg = llama::config(&server.url, &server.url);
    let mut files = vec![("canaryd.yaml".to_string(), cfg)];
    for (name, text) in suites {
        files.push((format!("canaries/{name}"), text.to_string()));
    }
    files.push(("judges/.keep".into(), String::new()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write_tree(&refs)
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_suite_runs_against_the_real_model() {
    let Some(py) = llama::python_or_skip("canary_suite_runs_against_the_real_model") else {
        return;
    };
    let server = LlamaServer::start(&py, &[]).await;
    let dir = project(&server, &[("real.yaml", SUITE)]);
    let db = TestDb::sqlite().await;
    let started = std::time::Instant::now();
    let (code, report, err) = run_json(dir.path(), "real-refunds", &[], &db.url);
    eprintln!(
        "canaryd run of {} results took {:.1} s",
        report["results"].as_array().map_or(0, |r| r.len()),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(report["status"], "completed", "{err}\n{report:#}");
    // The unconstrained JSON case fails on both targets, so the run exits 1.
    assert_eq!(code, 1, "{err}\n{report:#}");
    let show = |case: &str, target: &str| {
        let r = result(&report, case, target);
        format!("{case}@{target}: {:#}", r)
    };

    for target in ["pinned", "live"] {
        // Identity as the server reports it: its alias, and llama.cpp's
        // build string as the fingerprint.
        for r in report["results"].as_array().unwrap() {
            if r["target"] != target {
                continue;
            }
            assert_eq!(r["response_model"], MODEL, "{r:#}");
            assert_eq!(r["system_fingerprint"], FINGERPRINT, "{r:#}");
            assert!(
                r["usage"]["completion_tokens"].as_u64().unwrap() > 0,
                "{r:#}"
            );
        }
        let plain = result(&report, "refund-window", target);
        let streamed = result(&report, "refund-window-streamed", target);
        assert_eq!(
            plain["outcome"],
            "pass",
            "{}",
            show("refund-window", target)
        );
        assert_eq!(
            plain["answer"], streamed["answer"],
            "same seed, same text, streamed or not"
        );
        assert_eq!(plain["usage"], streamed["usage"]);
        assert_eq!(streamed["outcome"], "pass");

        let json = result(&report, "order-json", target);
        assert_eq!(json["outcome"], "pass", "{}", show("order-json", target));
        assert_eq!(json["finish_reason"], "stop");
        let free = result(&report, "order-json-unconstrained", target);
        assert_eq!(
            free["outcome"],
            "fail",
            "{}",
            show("order-json-unconstrained", target)
        );
        assert!(
            free["verdicts"][0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("expected JSON"),
            "{free:#}"
        );

        let refusal = result(&report, "refuses-personal-data", target);
        assert_eq!(
            refusal["outcome"],
            "pass",
            "{}",
            show("refuses-personal-data", target)
        );

        for case in ["truncated", "truncated-streamed"] {
            let t = result(&report, case, target);
            assert_eq!(t["finish_reason"], "length", "{}", show(case, target));
            assert_eq!(t["usage"]["completion_tokens"], 5, "{t:#}");
            assert_eq!(t["outcome"], "pass");
        }
        if target == "live" {
            assert_eq!(plain["agrees_with_pinned"], true, "one server, one answer");
        }
    }

    // The store holds the same identity and finish reasons.
    let s = store(&db.url).await;
    let runs = s.recent_runs("real-refunds", 5).await.unwrap();
    let rows = s.run_results(runs[0].id).await.unwrap();
    assert_eq!(rows.len(), 14);
    for row in &rows {
        assert_eq!(row.response_model.as_deref(), Some(MODEL));
        assert_eq!(row.system_fingerprint.as_deref(), Some(FINGERPRINT));
        let expected = if row.case_id.starts_with("truncated") {
            "length"
        } else {
            "stop"
        };
        assert_eq!(
            row.finish_reason.as_deref(),
            Some(expected),
            "{}@{}: {:?}",
            row.case_id,
            row.target,
            row.answer
        );
    }
    s.close().await;
}

/// Every judgement of the real model is a number on the scale with
/// reasoning, or a judge error; a cut-off answer is always an error.
#[tokio::test(flavor = "multi_thread")]
async fn real_judge_scores_are_on_the_scale_or_errors() {
    use canaryd::judge::call::{JudgeError, score, score_within};
    let Some(py) = llama::python_or_skip("real_judge_scores_are_on_the_scale_or_errors") else {
        return;
    };
    let server = LlamaServer::start(&py, &[]).await;
    let (providers, judge) = llama::providers_and_judge(&server, "groundedness");
    let pairs = llama::labelled_pairs();
    // Two grounded and two ungrounded answers: enough to see both kinds.
    let sample = [&pairs[0], &pairs[1], &pairs[2], &pairs[3]];
    let mut scored = 0;
    for pair in sample {
        match score(&providers, &judge, &pair.judge_input()).await {
            Ok(v) => {
                scored += 1;
                assert!(
                    (judge.scale.min..=judge.scale.max).contains(&v.score),
                    "{v:?}"
                );
                assert!(!v.reasoning.trim().is_empty(), "{v:?}");
                assert_eq!(v.judge_model, MODEL);
                assert!(v.output_tokens > 0);
            }
            Err(JudgeError::Malformed(m)) => eprintln!("judge error (allowed): {m}"),
            Err(e) => panic!("not a judge verdict: {e}"),
        }
    }
    // The grammar makes every complete answer a valid object, but a 135M
    // model can still loop inside `reasoning` until max_tokens: that is the
    // judge error above, never a score.
    assert!(
        scored >= sample.len() / 2,
        "{scored} of {} scored",
        sample.len()
    );

    // Cut off mid-object: never a score, always a judge error naming why,
    // after the one retry.
    for max_tokens in [3, 12] {
        let r = score_within(&providers, &judge, &sample[0].judge_input(), max_tokens).await;
        match r {
            Err(JudgeError::Malformed(m)) => assert!(m.contains("cut off"), "{m}"),
            other => panic!("max_tokens {max_tokens}: expected a judge error, got {other:?}"),
        }
    }
}

/// Centroid drift with the real server's embeddings: answers about refunds
/// against answers about shipping, both generated by the model itself.
#[tokio::test(flavor = "multi_thread")]
async fn real_embeddings_separate_refund_from_shipping_answers() {
    use canaryd::provider::{ChatRequest, Message};
    use canaryd::signals::embedding::cosine;
    let Some(py) = llama::python_or_skip("real_embeddings_separate_refund_from_shipping_answers")
    else {
        return;
    };
    let server = LlamaServer::start(&py, &["--embeddings"]).await;
    let (providers, _) = llama::providers_and_judge(&server, "groundedness");
    let (chat, model) = providers.resolve("live").unwrap();
    let (embedder, embed_model) = providers.resolve("embedder").unwrap();
    let ask = |q: &str| ChatRequest {
        model: model.model.clone(),
        messages: vec![
            Message::new(
                "system",
                "You are the support assistant of Acme. Answer in one sentence.",
            ),
            Message::new("user", q),
        ],
        temperature: Some(0.0),
        max_tokens: Some(40),
        seed: Some(7),
        ..Default::default()
    };
    let refunds = [
        "How do I get a refund?",
        "Can I return a product for my money back?",
        "How long do refunds take to arrive?",
        "Will I be refunded if my order is damaged?",
        "Can I get a refund without a receipt?",
        "Is the refund paid to my credit card?",
        "Do you refund sale items?",
        "Who pays for the return when I ask for a refund?",
    ];
    let shipping = [
        "How long does shipping take?",
        "Do you ship to Germany?",
        "How much does express delivery cost?",
        "Can I track my parcel?",
        "Which courier delivers my package?",
        "Can I change my delivery address?",
        "Do you deliver on weekends?",
        "Is shipping free over a certain amount?",
    ];
    let mut answers: Vec<Vec<String>> = Vec::new();
    for qs in [&refunds, &shipping] {
        let mut out = Vec::new();
        for q in qs.iter() {
            out.push(chat.chat(&ask(q)).await.expect("answer").content);
        }
        answers.push(out);
    }
    let centroid = |texts: &[String], vs: &[Vec<f32>]| -> Vec<f64> {
        let mut c = vec![0.0f64; vs[0].len()];
        for v in vs {
            c.iter_mut().zip(v).for_each(|(a, x)| *a += *x as f64);
        }
        c.iter_mut().for_each(|a| *a /= texts.len() as f64);
        c
    };
    let mut halves = Vec::new();
    for texts in &answers {
        let vs = embedder
            .embed(&embed_model.model, texts)
            .await
            .expect("embeddings");
        assert_eq!(vs.len(), texts.len());
        assert_eq!(vs[0].len(), 576, "SmolLM2-135M's hidden size");
        halves.push((
            centroid(&texts[..4], &vs[..4]),
            centroid(&texts[4..], &vs[4..]),
        ));
    }
    let (r1, r2) = &halves[0];
    let (s1, s2) = &halves[1];
    let same_refund = cosine(r1, r2);
    let same_shipping = cosine(s1, s2);
    let across = [
        cosine(r1, s1),
        cosine(r1, s2),
        cosine(r2, s1),
        cosine(r2, s2),
    ];
    let worst_across = across.iter().cloned().fold(f64::MIN, f64::max);
    eprintln!(
        "centroid cosine: refund/refund {same_refund:.4}, shipping/shipping {same_shipping:.4}, \
         refund/shipping {:.4}..{worst_across:.4} (detector threshold 0.82)",
        across.iter().cloned().fold(f64::MAX, f64::min)
    );
    // Measured (see BENCHMARKS.md): resampling refund answers keeps the
    // centroid closer than any shipping half, but shipping answers scatter
    // as much as a change of topic, and every cosine stays above the
    // detector's 0.82: mean-pooled states of a 135M chat model are not a
    // sentence encoder, and a topic change alone does not trip the rule.
    assert!(same_refund > worst_across, "{same_refund} vs {across:?}");
    let whole = |h: &(Vec<f64>, Vec<f64>)| -> Vec<f64> {
        h.0.iter().zip(&h.1).map(|(a, b)| (a + b) / 2.0).collect()
    };
    // Printed, not asserted: 0.9709 here, within 0.003 of the refund halves,
    // a margin CPU kernels on another machine could flip.
    let topic_shift = cosine(&whole(&halves[0]), &whole(&halves[1]));
    eprintln!("centroid cosine refund vs shipping (all 8 each): {topic_shift:.4}");
}

const DRILL_SUITE: &str = r#"
suite: drill
version: 1
targets: [pinned, live]
defaults: { temperature: 0, max_tokens: 40, seed: 7 }
system: You are the support assistant of Acme. Answer in one or two sentences.
cases:
  - id: refund-window
    context: ["Refunds are accepted within 30 days of delivery."]
    prompt: How many days do I have to ask for a refund?
    expect: [{ icontains: "30" }]
  # No expectation: compared with pinned only.
  - id: free-text
    prompt: What can you help me with?
"#;

/// A silent update rehearsed on the real server: `live` is the same model,
/// same name, same fingerprint, but the server restarted with other
/// sampling defaults (repeat penalty 1.6, top-k 1). `pinned` stays.
#[tokio::test(flavor = "multi_thread")]
async fn silent_update_drill_on_the_real_server() {
    let Some(py) = llama::python_or_skip("silent_update_drill_on_the_real_server") else {
        return;
    };
    let pinned = LlamaServer::start(&py, &[]).await;
    let mut live = LlamaServer::start(&py, &[]).await;
    let cfg = format!(
        "{}detectors:\n  canary_regression: {{ recent_passes: 2 }}\n",
        llama::config(&pinned.url, &live.url)
    );
    let dir = write_tree(&[
        ("canaryd.yaml", cfg.as_str()),
        ("canaries/drill.yaml", DRILL_SUITE),
        ("judges/.keep", ""),
    ]);
    let db = TestDb::sqlite().await;
    let env = [("CANARYD_DATABASE_URL", db.url.as_str())];
    let regressions = |dir: &std::path::Path| {
        let (_, out, err) = support::run_cli(&["status", "--format", "json"], dir, &env);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        v
    };
    for _ in 0..2 {
        let (code, report, err) = run_json(dir.path(), "drill", &[], &db.url);
        assert_eq!(code, 0, "{err}\n{report:#}");
        assert_eq!(
            result(&report, "free-text", "live")["agrees_with_pinned"],
            true
        );
    }
    let before = regressions(dir.path());
    eprintln!("status before the switch: {before:#}");

    // The silent update: same port, same alias, new sampling defaults.
    let port = live.port;
    live.stop();
    let switched = std::time::Instant::now();
    let _live =
        LlamaServer::start_on(&py, port, &["--repeat-penalty", "1.6", "--top-k", "1"]).await;
    let (code, report, err) = run_json(dir.path(), "drill", &[], &db.url);
    let after = regressions(dir.path());
    let detected_in = switched.elapsed();
    eprintln!(
        "status after the switch ({:.1} s): {after:#}",
        detected_in.as_secs_f64()
    );
    assert_eq!(code, 1, "{err}\n{report:#}");
    let r = result(&report, "refund-window", "live");
    assert_eq!(r["outcome"], "fail", "{r:#}");
    assert_eq!(r["response_model"], MODEL, "the name did not change");
    assert_eq!(r["system_fingerprint"], FINGERPRINT, "nor the fingerprint");
    assert_eq!(
        result(&report, "refund-window", "pinned")["outcome"],
        "pass"
    );
    assert_eq!(
        result(&report, "free-text", "live")["agrees_with_pinned"],
        false
    );

    // What the detectors make of it: live regressed, pinned did not, and
    // no model change was seen: the update was silent.
    let verdict = |status: &serde_json::Value, rule: &str, dim: Option<&str>| {
        status["subjects"][0]["detectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["rule"] == rule && d["dimension"].as_str() == dim)
            .cloned()
            .unwrap_or_else(|| panic!("no {rule} {dim:?} in {status:#}"))
    };
    assert_eq!(
        verdict(&before, "canary_regression", Some("live"))["status"],
        "ok"
    );
    let live_after = verdict(&after, "canary_regression", Some("live"));
    assert_eq!(live_after["status"], "firing", "{live_after:#}");
    assert!(
        live_after["summary"]
            .as_str()
            .unwrap()
            .contains("now failing after 2 passes: refund-window"),
        "{live_after:#}"
    );
    assert_eq!(
        verdict(&after, "canary_regression", Some("pinned"))["status"],
        "ok"
    );
    assert_eq!(verdict(&after, "model_change", None)["status"], "ok");
}

/// The shipped groundedness canaries, run by the daemon against the real
/// 135M judge: it scores everything near 1 (see BENCHMARKS.md), so the
/// grounded canary (expected 5) lands outside its tolerance and is stored
/// marked OUTSIDE under `judge:groundedness`.
#[tokio::test(flavor = "multi_thread")]
async fn judge_canaries_flag_the_weak_real_judge() {
    use canaryd::on_db;
    let Some(py) = llama::python_or_skip("judge_canaries_flag_the_weak_real_judge") else {
        return;
    };
    let server = LlamaServer::start(&py, &[]).await;
    let judge = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/judges/groundedness.yaml"
    ))
    .unwrap();
    let cfg = llama::config(&server.url, &server.url);
    let dir = write_tree(&[
        ("canaryd.yaml", cfg.as_str()),
        ("judges/groundedness.yaml", judge.as_str()),
        ("canaries/.keep", ""),
    ]);
    let db = TestDb::sqlite().await;
    let daemon = support::Spawned::start(
        &["serve", "--config", "canaryd.yaml"],
        dir.path(),
        &[("CANARYD_DATABASE_URL", &db.url)],
    );
    let s = store(&db.url).await;
    type Row = (Option<f64>, Option<String>, Option<String>, Option<String>);
    let started = std::time::Instant::now();
    let rows: Vec<Row> = loop {
        let rows: Vec<Row> = on_db!(s.db(), pool => sqlx::query_as(
            "SELECT score, reasoning, error, judge_model FROM judge_scores \
             WHERE source = 'canary' AND stream = 'judge:groundedness' ORDER BY id")
            .fetch_all(pool).await.unwrap());
        if rows.len() >= 2 {
            break rows;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "judge canaries did not run: {rows:?}\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    eprintln!("judge canaries: {rows:#?}");
    for (score, reasoning, error, model) in &rows {
        match (score, error) {
            (Some(v), None) => {
                assert!((1.0..=5.0).contains(v), "{rows:?}");
                assert!(
                    reasoning.as_deref().is_some_and(|r| r.len() > 20),
                    "{rows:?}"
                );
                assert_eq!(model.as_deref(), Some(MODEL));
            }
            (None, Some(e)) => assert!(e.contains("judge_malformed"), "{e}"),
            other => panic!("neither a score nor an error: {other:?}"),
        }
    }
    let grounded = &rows[0];
    assert!(
        grounded.2.is_some()
            || grounded
                .1
                .as_deref()
                .is_some_and(|r| r.contains("(OUTSIDE)")),
        "the weak judge passed the grounded canary: {grounded:?}"
    );
    assert!(
        daemon.stderr().contains("judge canary outside tolerance") || grounded.2.is_some(),
        "{}",
        daemon.stderr()
    );
    s.close().await;
    drop(daemon);
}
