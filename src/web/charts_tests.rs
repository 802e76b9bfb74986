use super::*;

fn chart(points: Vec<(i64, Option<f64>)>) -> LineChart {
    LineChart {
        title: "t".into(),
        x_range: (0, 10 * HOUR_MS),
        y_range: Some((0.0, 10.0)),
        y_format: YFormat::Number,
        series: vec![Series {
            label: "s".into(),
            points,
        }],
        band: None,
        markers: vec![],
    }
}

#[test]
fn escapes_every_kind_of_text() {
    assert_eq!(
        esc(r#"<script>"a"&'b'</script>"#),
        "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;"
    );
    let mut c = chart(vec![(0, Some(1.0)), (HOUR_MS, Some(2.0))]);
    c.title = "<script>alert(1)</script>".into();
    c.series[0].label = "<img src=x onerror=alert(1)>".into();
    c.band = Some(Band {
        lo: 1.0,
        mid: 2.0,
        hi: 3.0,
        label: "<b>band</b>".into(),
    });
    c.markers = vec![Marker {
        at_ms: HOUR_MS,
        label: "\"><script>x</script>".into(),
        kind: MarkerKind::ModelChange,
    }];
    let svg = line_chart(&c);
    assert!(!svg.contains("<script"), "{svg}");
    assert!(!svg.contains("<img"), "{svg}");
    assert!(!svg.contains("<b>"), "{svg}");
    assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let hist = histogram(
        "<script>",
        &[HistBin {
            label: "<i>".into(),
            current: 0.5,
            baseline: 0.5,
        }],
    );
    assert!(!hist.contains("<script") && !hist.contains("<i>"), "{hist}");
}

#[test]
fn maps_the_ranges_onto_the_plot_area() {
    let sc = Scale {
        x0: 0,
        x1: 100,
        y0: 0.0,
        y1: 10.0,
    };
    assert_eq!(sc.x(0), LEFT);
    assert_eq!(sc.x(100), W - RIGHT);
    assert_eq!(sc.y(0.0), H - BOTTOM);
    assert_eq!(sc.y(10.0), TOP);
}

#[test]
fn gaps_split_the_line_and_lone_points_become_dots() {
    let svg = line_chart(&chart(vec![
        (0, Some(1.0)),
        (HOUR_MS, Some(2.0)),
        (2 * HOUR_MS, None),
        (3 * HOUR_MS, Some(3.0)),
        (4 * HOUR_MS, Some(4.0)),
        (5 * HOUR_MS, None),
        (6 * HOUR_MS, Some(5.0)),
    ]));
    let path = svg.split(r#"<path d=""#).nth(1).unwrap();
    let d = &path[..path.find('"').unwrap()];
    assert_eq!(d.matches('M').count(), 2, "{d}");
    assert_eq!(d.matches('L').count(), 2, "{d}");
    assert_eq!(svg.matches("<circle").count(), 1);
    // First point at the left edge, value 1 of 0..10.
    assert!(
        d.starts_with(&format!("M{LEFT:.1},{:.1}", H - BOTTOM - 18.0)),
        "{d}"
    );
}

#[test]
fn no_data_says_so() {
    let svg = line_chart(&chart(vec![(0, None), (HOUR_MS, Some(f64::NAN))]));
    assert!(svg.contains("no data"), "{svg}");
    assert!(!svg.contains("<path"));
    assert!(histogram("h", &[]).contains("no data"));
    let spark = sparkline(&[(0, None)], (0, 1), (0.0, 1.0));
    assert!(spark.contains("stroke-dasharray") && !spark.contains("<path"));
}

#[test]
fn band_and_markers_are_drawn_where_they_belong() {
    let mut c = chart(vec![(0, Some(5.0)), (10 * HOUR_MS, Some(5.0))]);
    c.band = Some(Band {
        lo: 4.0,
        mid: 5.0,
        hi: 6.0,
        label: "baseline".into(),
    });
    c.markers = vec![
        Marker {
            at_ms: 5 * HOUR_MS,
            label: "model changed".into(),
            kind: MarkerKind::ModelChange,
        },
        Marker {
            at_ms: 20 * HOUR_MS,
            label: "outside".into(),
            kind: MarkerKind::ModelChange,
        },
    ];
    let svg = line_chart(&c);
    let sc = Scale {
        x0: 0,
        x1: 10 * HOUR_MS,
        y0: 0.0,
        y1: 10.0,
    };
    assert!(
        svg.contains(&format!(r#"class="band" x="{LEFT}" y="{:.1}""#, sc.y(6.0))),
        "{svg}"
    );
    assert!(svg.contains(&format!(
        r#"<title>model changed</title><line x1="{x:.1}" x2="{x:.1}""#,
        x = sc.x(5 * HOUR_MS)
    )));
    assert!(!svg.contains("outside"));
}

#[test]
fn auto_range_covers_data_and_band() {
    let mut c = chart(vec![(0, Some(2.0)), (HOUR_MS, Some(3.0))]);
    c.y_range = None;
    c.band = Some(Band {
        lo: 1.0,
        mid: 1.5,
        hi: 2.0,
        label: String::new(),
    });
    let (lo, hi) = y_range(&c);
    assert!(lo < 1.0 && hi > 3.0, "{lo} {hi}");
}

#[test]
fn ticks_are_nice_and_bounded() {
    assert_eq!(nice_ticks(0.0, 1.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    assert_eq!(nice_ticks(0.0, 0.04), vec![0.0, 0.01, 0.02, 0.03, 0.04]);
    assert_eq!(nice_ticks(1.0, 5.0), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(nice_ticks(2.93, 4.95), vec![3.0, 3.5, 4.0, 4.5]);
    assert!(nice_ticks(1.0, 1.0).is_empty());
    let day = 24 * HOUR_MS;
    let t = time_ticks(day + 1, 3 * day);
    assert!(
        t.len() <= 7 && t.iter().all(|x| x % (12 * HOUR_MS) == 0),
        "{t:?}"
    );
    assert_eq!(time_label(day), "Jan 02");
    assert_eq!(time_label(day + 6 * HOUR_MS), "06:00");
}

#[test]
fn histogram_bars_are_proportional() {
    let svg = histogram(
        "len",
        &[
            HistBin {
                label: "0".into(),
                current: 0.5,
                baseline: 0.25,
            },
            HistBin {
                label: "25".into(),
                current: 0.5,
                baseline: 0.75,
            },
        ],
    );
    assert_eq!(svg.matches(r#"class="current""#).count(), 2);
    assert_eq!(svg.matches(r#"class="baseline""#).count(), 2);
    let heights: Vec<f64> = svg
        .split("height=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
        .collect();
    // current 0.5, baseline 0.25, current 0.5, baseline 0.75
    assert!((heights[0] / heights[1] - 2.0).abs() < 0.02, "{heights:?}");
    assert!((heights[3] / heights[1] - 3.0).abs() < 0.02, "{heights:?}");
}
