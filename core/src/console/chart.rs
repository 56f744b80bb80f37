//! Charts drawn on the server as inline SVG: no script, no external file,
//! colours from presentation attributes and the style sheet's classes
//! (the policy allows no inline style).

use maud::{Markup, html};

/// One bar: a label (a day), the human and the bot part.
#[derive(Debug, Clone)]
pub struct Bar {
    /// `YYYY-MM-DD`.
    pub label: String,
    /// The lower part (human clicks).
    pub value: u64,
    /// The upper part (bot hits).
    pub extra: u64,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// A bar per day, humans below and bots stacked above, with a y axis of
/// round steps and the first, middle and last days labelled.
pub fn bars(title: &str, bars: &[Bar], value_name: &str, extra_name: &str) -> Markup {
    let max = bars.iter().map(|b| b.value + b.extra).max().unwrap_or(0);
    let top = nice_ceiling(max);
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / bars.len().max(1) as f64;
    let bar_w = (slot * 0.7).clamp(1.0, 48.0);
    let y = |v: u64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let labelled = |i: usize| i == 0 || i + 1 == bars.len() || i == bars.len() / 2;
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title)
                preserveAspectRatio="xMidYMid meet" {
                title { (title) }
                @for step in 0..=4u64 {
                    @let v = top * step / 4;
                    line.grid x1=(LEFT) x2=(WIDTH) y1=(fmt(y(v))) y2=(fmt(y(v))) {}
                    text.axis x=(LEFT - 6.0) y=(fmt(y(v) + 4.0)) text-anchor="end" { (v) }
                }
                @for (i, b) in bars.iter().enumerate() {
                    @let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                    g {
                        title { (b.label) ": " (b.value) " " (value_name) ", " (b.extra) " " (extra_name) }
                        @if b.value > 0 {
                            rect.human x=(fmt(x)) y=(fmt(y(b.value))) width=(fmt(bar_w))
                                height=(fmt(y(0) - y(b.value))) {}
                        }
                        @if b.extra > 0 {
                            rect.bot x=(fmt(x)) y=(fmt(y(b.value + b.extra))) width=(fmt(bar_w))
                                height=(fmt(y(b.value) - y(b.value + b.extra))) {}
                        }
                    }
                    @if labelled(i) {
                        // The first and last labels end inside the chart.
                        @let (lx, anchor) = if i == 0 {
                            (x, "start")
                        } else if i + 1 == bars.len() {
                            (x + bar_w, "end")
                        } else {
                            (x + bar_w / 2.0, "middle")
                        };
                        text.axis x=(fmt(lx)) y=(fmt(HEIGHT - 6.0)) text-anchor=(anchor) {
                            (short_label(&b.label))
                        }
                    }
                }
            }
            figcaption {
                span.key.human { "■" } " " (value_name) " "
                span.key.bot { "■" } " " (extra_name)
            }
        }
    }
}

/// A day (`YYYY-MM-DD`) as `MM-DD`; any other label as it is.
fn short_label(label: &str) -> &str {
    match label.as_bytes() {
        [_, _, _, _, b'-', _, _, b'-', _, _] => &label[5..],
        _ => label,
    }
}

/// The smallest of 4, 8, 20, 40, 80, 200, … (steps of 1, 2, 5 × 10ⁿ, four
/// of them) at or above `max`.
fn nice_ceiling(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step * m * 4 >= max {
                return step * m * 4;
            }
        }
        step *= 10;
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn days_are_labelled_by_month_and_day_other_groups_in_full() {
        assert_eq!(short_label("2026-11-05"), "11-05");
        assert_eq!(short_label("echo-review"), "echo-review");
        assert_eq!(short_label("spring"), "spring");
    }

    #[test]
    fn axes_end_on_round_steps() {
        assert_eq!(nice_ceiling(0), 4);
        assert_eq!(nice_ceiling(4), 4);
        assert_eq!(nice_ceiling(5), 8);
        assert_eq!(nice_ceiling(17), 20);
        assert_eq!(nice_ceiling(1234), 2000);
    }

    #[test]
    fn a_chart_has_a_bar_part_per_nonzero_value() {
        let bars = [
            Bar {
                label: "2026-01-01".into(),
                value: 3,
                extra: 1,
            },
            Bar {
                label: "2026-01-02".into(),
                value: 0,
                extra: 0,
            },
        ];
        let svg = super::bars("Clicks", &bars, "humans", "bots").into_string();
        assert_eq!(svg.matches("<rect class=\"human\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("<rect class=\"bot\"").count(), 1, "{svg}");
        assert!(svg.contains("2026-01-01: 3 humans, 1 bots"), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
    }
}
