//! Spend on the stream page: the stream's spend over time and its top
//! users' (issue 15: "streams and users show spend over time"). A user who
//! runs up the bill shows as their own line next to the stream's, so the
//! person paged by `spend_rate` sees at once whether one user or the whole
//! stream moved. Pure views of `Store::stream_spend_hours` and
//! `Store::stream_user_spend`.

use serde::Serialize;

use super::charts::{Series, YFormat};
use super::spend::money;
use super::stream_view::{ChartView, LineFn};
use super::view::Periods;
use crate::store::{SpendHour, UserSpend};

/// Users drawn as lines (one colour each; more would repeat colours).
pub const CHART_USERS: usize = 5;

/// The users of the table: the top spenders, with their share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSpendRow {
    pub user: String,
    pub calls: i64,
    pub tokens: i64,
    /// `$0.0123`, or empty when none of the user's records had a price.
    pub cost: String,
    /// Share of the stream's cost (or tokens, where nothing is priced) in
    /// the period: `62 %`.
    pub share: String,
}

/// The users' part of the stream page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSpendView {
    /// One line per top user; `None` when no record of the period named a
    /// user (`user_id`).
    pub chart: Option<ChartView>,
    pub rows: Vec<UserSpendRow>,
}

/// Cost per hour when any record of the period had a price, else tokens
/// (cost would be a flat zero).
fn by_cost(hours: &[SpendHour]) -> bool {
    hours.iter().any(|h| h.cost_usd > 0.0)
}

fn measure(h: &SpendHour, cost: bool) -> f64 {
    if cost { h.cost_usd } else { h.tokens as f64 }
}

/// One point per chart hour, zero where the hour had no spend.
fn points(hours: &[SpendHour], p: &Periods, cost: bool) -> Vec<(i64, Option<f64>)> {
    p.chart_hours()
        .map(|t| {
            let v = hours
                .iter()
                .find(|s| s.hour_ms == t)
                .map(|s| measure(s, cost));
            (t, v.or(Some(0.0)))
        })
        .collect()
}

/// The stream's spend per hour (all users).
pub fn stream_chart(spend: &[SpendHour], p: &Periods, line: &LineFn<'_>) -> ChartView {
    let cost = by_cost(spend);
    let (calls, tokens, usd) = spend.iter().fold((0, 0, 0.0), |(c, t, u), h| {
        (c + h.calls, t + h.tokens, u + h.cost_usd)
    });
    let (label, caption) = if cost {
        (
            "cost (USD) per hour",
            "Estimated cost per hour (the application's cost_usd, else the model's prices)",
        )
    } else {
        (
            "tokens per hour",
            "Tokens per hour (no price known for these models)",
        )
    };
    ChartView::line(
        "Spend",
        format!("{caption}; {calls} calls, {tokens} tokens, ${usd:.2} in the period."),
        &line(
            label.into(),
            None,
            YFormat::Number,
            vec![Series {
                label: label.into(),
                points: points(spend, p, cost),
            }],
            None,
        ),
    )
}

/// The top users' spend: a line each for the first [`CHART_USERS`], a
/// table row each. `stream` is the stream's own spend (its share's
/// denominator, and whether cost or tokens are shown, so both charts
/// measure the same thing).
pub fn users(
    users: &[UserSpend],
    stream: &[SpendHour],
    p: &Periods,
    line: &LineFn<'_>,
) -> UserSpendView {
    let cost = by_cost(stream);
    let total: f64 = stream.iter().map(|h| measure(h, cost)).sum();
    let rows = users
        .iter()
        .map(|u| {
            let mine = if cost { u.cost_usd } else { u.tokens as f64 };
            UserSpendRow {
                user: u.user.clone(),
                calls: u.calls,
                tokens: u.tokens,
                cost: if u.cost_usd > 0.0 {
                    money(u.cost_usd)
                } else {
                    String::new()
                },
                share: if total > 0.0 {
                    format!("{:.0} %", 100.0 * mine / total)
                } else {
                    String::new()
                },
            }
        })
        .collect();
    let chart = (!users.is_empty()).then(|| {
        let label = if cost {
            "cost (USD) per hour"
        } else {
            "tokens per hour"
        };
        let series = users
            .iter()
            .take(CHART_USERS)
            .map(|u| Series {
                label: u.user.clone(),
                points: points(&u.hours, p, cost),
            })
            .collect();
        ChartView::line(
            "Spend by user",
            format!(
                "{} per hour of the top {} users by spend in the period (the records' user_id).",
                if cost { "Estimated cost" } else { "Tokens" },
                users.len().min(CHART_USERS)
            ),
            &line(label.into(), None, YFormat::Number, series, None),
        )
    });
    UserSpendView { chart, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::stream_view::{StreamData, build_stream};

    const HOUR_MS: i64 = 3_600_000;

    fn hour(hour_ms: i64, calls: i64, tokens: i64, cost_usd: f64) -> SpendHour {
        SpendHour {
            hour_ms,
            calls,
            tokens,
            cost_usd,
        }
    }

    fn user(name: &str, hours: Vec<SpendHour>) -> UserSpend {
        UserSpend {
            user: name.into(),
            calls: hours.iter().map(|h| h.calls).sum(),
            tokens: hours.iter().map(|h| h.tokens).sum(),
            cost_usd: hours.iter().map(|h| h.cost_usd).sum(),
            hours,
        }
    }

    fn periods() -> Periods {
        Periods::new(1_700_000_000_000 / HOUR_MS * HOUR_MS, 24, 6, 7)
    }

    #[test]
    fn the_top_users_get_a_line_each_and_their_share_of_the_stream() {
        let p = periods();
        let last = p.end_ms - HOUR_MS;
        let heavy = user("<b>heavy</b>", vec![hour(last, 240, 240_000, 0.96)]);
        let light = user("light", vec![hour(last - HOUR_MS, 10, 10_000, 0.04)]);
        let d = StreamData {
            stream: "s".into(),
            spend: vec![
                hour(last - HOUR_MS, 10, 10_000, 0.04),
                hour(last, 240, 240_000, 0.96),
            ],
            user_spend: vec![heavy, light],
            ..Default::default()
        };
        let v = build_stream(&d, &p).user_spend;
        let shares: Vec<(&str, &str, &str)> = v
            .rows
            .iter()
            .map(|r| (r.user.as_str(), r.cost.as_str(), r.share.as_str()))
            .collect();
        assert_eq!(
            shares,
            [("<b>heavy</b>", "$0.96", "96 %"), ("light", "$0.04", "4 %")]
        );
        let chart = v.chart.expect("users named: a chart");
        let legend: Vec<&str> = chart.legend.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(legend, ["<b>heavy</b>", "light"]);
        assert!(
            !chart.svg.contains("<b>heavy"),
            "a user id is escaped in the chart: {}",
            chart.svg
        );
        assert!(
            chart.caption.starts_with("Estimated cost"),
            "{}",
            chart.caption
        );
    }

    #[test]
    fn without_prices_users_are_measured_in_tokens_and_without_users_there_is_no_chart() {
        let p = periods();
        let last = p.end_ms - HOUR_MS;
        let d = StreamData {
            stream: "s".into(),
            spend: vec![hour(last, 30, 3_000, 0.0)],
            user_spend: vec![user("u", vec![hour(last, 10, 1_000, 0.0)])],
            ..Default::default()
        };
        let v = build_stream(&d, &p).user_spend;
        assert_eq!(v.rows[0].cost, "", "no price: no cost");
        assert_eq!(v.rows[0].share, "33 %", "a third of the stream's tokens");
        assert!(v.chart.unwrap().caption.starts_with("Tokens"));

        let none = StreamData {
            stream: "s".into(),
            spend: vec![hour(last, 30, 3_000, 0.0)],
            ..Default::default()
        };
        let v = build_stream(&none, &p).user_spend;
        assert!(v.chart.is_none() && v.rows.is_empty());
    }

    #[test]
    fn more_users_than_colours_are_tabled_but_not_drawn() {
        let p = periods();
        let last = p.end_ms - HOUR_MS;
        let many: Vec<UserSpend> = (0..8)
            .map(|i| user(&format!("u{i}"), vec![hour(last, 1, 100, 0.01)]))
            .collect();
        let d = StreamData {
            stream: "s".into(),
            spend: vec![hour(last, 8, 800, 0.08)],
            user_spend: many,
            ..Default::default()
        };
        let v = build_stream(&d, &p).user_spend;
        assert_eq!(v.rows.len(), 8);
        assert_eq!(v.chart.unwrap().legend.len(), CHART_USERS);
    }
}
