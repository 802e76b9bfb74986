//! The stream page's refusal section: how often the refusal classifier
//! agrees with the judges' refusal labels on the stream's judged records,
//! the counts behind the rate, and the latest disagreements, each linked to
//! its response page. The classifier reads structure, the judge reads
//! meaning; where they part is where the classifier needs work (or the
//! judge does). A pure function of the store's `RefusalAgreement`.

use serde::Serialize;

use super::fmt::{fmt_ago, snippet};
use crate::store::RefusalAgreement;

/// The section as the template shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RefusalAgreementView {
    /// Labels compared (a record labelled by two judges counts twice).
    pub labelled: i64,
    /// "96.0 %", or "—" without labels.
    pub rate: String,
    pub both: i64,
    pub neither: i64,
    pub classifier_only: i64,
    pub judge_only: i64,
    pub disagreements: Vec<DisagreementRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisagreementRow {
    pub href: String,
    pub judge: String,
    /// "classifier: refusal · judge: answer"
    pub verdicts: String,
    pub when: String,
    pub snippet: String,
}

/// `None` when the labels could not be read (the section says so).
pub fn build(a: Option<&RefusalAgreement>, now_ms: i64) -> Option<RefusalAgreementView> {
    let a = a?;
    let labelled = a.labelled();
    let word = |refusal: bool| if refusal { "refusal" } else { "answer" };
    Some(RefusalAgreementView {
        labelled,
        rate: if labelled == 0 {
            "—".into()
        } else {
            format!(
                "{:.1} %",
                100.0 * (a.both + a.neither) as f64 / labelled as f64
            )
        },
        both: a.both,
        neither: a.neither,
        classifier_only: a.classifier_only,
        judge_only: a.judge_only,
        disagreements: a
            .disagreements
            .iter()
            .map(|d| DisagreementRow {
                href: format!("/responses/{}", d.response_id),
                judge: d.judge.clone(),
                verdicts: format!(
                    "classifier: {} · judge: {}",
                    word(d.classifier),
                    word(d.judge_says)
                ),
                when: fmt_ago(now_ms, d.ts_ms),
                snippet: snippet(&d.output, 140),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RefusalDisagreement;

    #[test]
    fn rate_counts_and_linked_disagreements() {
        let a = RefusalAgreement {
            both: 3,
            neither: 45,
            classifier_only: 1,
            judge_only: 1,
            disagreements: vec![RefusalDisagreement {
                response_id: 7,
                judge: "completion".into(),
                classifier: false,
                judge_says: true,
                ts_ms: 0,
                output: "<b>That is not something I will do.</b>".into(),
            }],
        };
        let v = build(Some(&a), 3_600_000).unwrap();
        assert_eq!((v.labelled, v.rate.as_str()), (50, "96.0 %"));
        assert_eq!((v.classifier_only, v.judge_only), (1, 1));
        let d = &v.disagreements[0];
        assert_eq!(d.href, "/responses/7");
        assert_eq!(d.verdicts, "classifier: answer · judge: refusal");
        assert_eq!(
            d.snippet, "<b>That is not something I will do.</b>",
            "escaped by the template"
        );
        let empty = build(Some(&RefusalAgreement::default()), 0).unwrap();
        assert_eq!((empty.labelled, empty.rate.as_str()), (0, "—"));
        assert_eq!(build(None, 0), None);
    }
}
