//! The refusal check behind `refusal: true/false` expectations: the same
//! classifier the ingest path uses, so a canary and a production response
//! are judged alike. The tests pin what canaries rely on.

pub use crate::ingest::refusal::{classify, is_refusal};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_common_refusals() {
        for r in [
            "I'm sorry, but I can't help with that.",
            "I cannot assist with creating malware.",
            "Sorry, I can’t do that.",
            "I must decline this request.",
            "I am unable to provide instructions for that.",
        ] {
            assert!(is_refusal(r), "{r}");
        }
    }

    #[test]
    fn recognises_every_refusal_the_simulator_sends() {
        for r in crate::sim::behave::REFUSALS {
            assert!(is_refusal(r), "{r}");
        }
    }

    #[test]
    fn helpful_answers_are_not_refusals() {
        for a in [
            "You have 30 days to ask for a refund.",
            "Sure! Here is the code:\nfn main() {}",
            "",
        ] {
            assert!(!is_refusal(a), "{a}");
        }
        // A refusal phrase far into a long helpful answer does not count.
        let long = format!(
            "{} I can't help noticing it works.",
            "Refunds are easy. ".repeat(30)
        );
        assert!(!is_refusal(&long));
    }
}
