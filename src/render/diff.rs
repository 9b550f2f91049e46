//! Differential flame graphs: a baseline and a current selection of the same app, compared
//! stack by stack after the baseline is scaled to the current total (so that a run twice as
//! long is not "twice as slow"). The SVG is inferno's differential mode: widths are the current
//! profile; a frame is red when its own (self) samples grew and blue when they shrank, relative
//! to the whole, and its title gives that change in points of the total.

use std::fmt::Write as _;

use super::{inferno_options, joined, svg_lines, Stacks, Style, Titles};

/// Each stack of either side with its baseline and current count, sorted, from lines as the
/// renderer wrote them for one side each.
fn merge(base: Vec<(String, u64)>, current: Vec<(String, u64)>) -> Vec<(String, u64, u64)> {
    let mut out = Vec::with_capacity(base.len().max(current.len()));
    let mut b = base.into_iter().peekable();
    let mut c = current.into_iter().peekable();
    loop {
        let next = match (b.peek(), c.peek()) {
            (None, None) => break,
            (Some(_), None) => b.next().map(|(l, n)| (l, n, 0)),
            (None, Some(_)) => c.next().map(|(l, n)| (l, 0, n)),
            (Some((bl, _)), Some((cl, _))) => match bl.cmp(cl) {
                std::cmp::Ordering::Less => b.next().map(|(l, n)| (l, n, 0)),
                std::cmp::Ordering::Greater => c.next().map(|(l, n)| (l, 0, n)),
                std::cmp::Ordering::Equal => {
                    let (l, bn) = b.next().unwrap_or_default();
                    let (_, cn) = c.next().unwrap_or_default();
                    Some((l, bn, cn))
                }
            },
        };
        out.extend(next);
    }
    out
}

fn total(lines: &[(String, u64)]) -> u64 {
    lines.iter().fold(0u64, |t, (_, c)| t.saturating_add(*c))
}

/// `count` of a total `from`, scaled to a total `to`, rounded to the nearest whole sample.
fn scaled(count: u64, from: u64, to: u64) -> u64 {
    if from == 0 {
        return 0;
    }
    let exact = u128::from(count) * u128::from(to);
    let (q, r) = (exact / u128::from(from), exact % u128::from(from));
    let rounded = if r * 2 >= u128::from(from) { q + 1 } else { q };
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

/// Two-column folded text, `stack baseline current` per line (the format of flamegraph.pl's
/// `difffolded.pl` and `inferno-diff-folded`, which inferno and flamegraph.pl render as a
/// differential graph). With `normalize`, baseline counts are scaled to the current total and
/// rounded; without, both are as stored.
pub fn folded(base: &Stacks, current: &Stacks, normalize: bool) -> String {
    let base = joined(base, super::folded_frame, |l| l);
    let current = joined(current, super::folded_frame, |l| l);
    let (bt, ct) = (total(&base), total(&current));
    let mut out = String::new();
    for (line, b, c) in merge(base, current) {
        let b = if normalize { scaled(b, bt, ct) } else { b };
        let _ = writeln!(out, "{line} {b} {c}");
    }
    out
}

/// The differential SVG. Counts are scaled exactly where they fit (the baseline multiplied by
/// the current total, the current by the baseline total, and inferno's display factor dividing
/// back), and rounded otherwise; the sample counts shown are the current selection's.
pub fn svg(base: &Stacks, current: &Stacks, titles: &Titles, style: &Style) -> std::io::Result<(Vec<u8>, Option<super::narrow::Cut>)> {
    let base = svg_lines(base);
    let current = svg_lines(current);
    let (bt, ct) = (total(&base), total(&current));
    let lines = merge(base, current);
    let g = gcd(bt, ct).max(1);
    let (mb, mc) = (ct / g, bt / g);
    // inferno sums counts in a usize and differences in an isize.
    let exact = u128::from(ct) * u128::from(mc) <= i64::MAX as u128 / 4 && bt > 0;
    let (mb, mc, factor) = if exact { (mb, mc, 1.0 / mc as f64) } else { (0, 1, 1.0) };
    // Beyond what inferno can add up, current counts are scaled down too (only near-saturated
    // totals get here).
    let down = if ct > i64::MAX as u64 / 4 { ct / (i64::MAX as u64 / 4) + 1 } else { 1 };
    let lines: Vec<(String, u64, u64)> = lines
        .into_iter()
        .map(|(line, b, c)| if exact { (line, b * mb, c * mc) } else { (line, scaled(b, bt, ct) / down, c / down) })
        .collect();
    let mut opts = inferno_options(titles, style);
    opts.factor = factor;
    // Widths are the current counts.
    let drawn_total = lines.iter().fold(0u64, |sum, (_, _, c)| sum.saturating_add(*c));
    let cut = super::narrow::within(lines.iter().map(|(l, _, c)| (l.as_str(), *c)), drawn_total, opts.min_width, titles.budget());
    if let Some(cut) = cut {
        opts.min_width = cut.min_width_pct;
        opts.subtitle = Some(super::subtitle_with(opts.subtitle.take(), &cut));
    }
    let mut input = String::with_capacity(lines.iter().map(|(l, _, _)| l.len() + 24).sum());
    for (line, b, c) in lines {
        let _ = writeln!(input, "{line} {b} {c}");
    }
    let mut out = Vec::with_capacity(input.len() * 2 + 16 * 1024);
    inferno::flamegraph::from_lines(&mut opts, input.lines(), &mut out)?;
    Ok((super::safe_search(out), cut))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn stacks(list: &[(&str, u64)]) -> Stacks {
        list.iter().map(|(s, c)| (s.split(';').map(Arc::from).collect(), *c)).collect()
    }

    #[test]
    fn folded_diff_normalises_the_baseline() {
        // Baseline: 10 samples; current: 20. Scaled baseline = 2 × counts.
        let base = stacks(&[("main;a", 6), ("main;b", 3), ("main;gone", 1)]);
        let current = stacks(&[("main;a", 6), ("main;b", 10), ("main;new", 4)]);
        assert_eq!(folded(&base, &current, true), "main;a 12 6\nmain;b 6 10\nmain;gone 2 0\nmain;new 0 4\n");
        assert_eq!(folded(&base, &current, false), "main;a 6 6\nmain;b 3 10\nmain;gone 1 0\nmain;new 0 4\n");
    }

    #[test]
    fn scaling_rounds_to_nearest() {
        assert_eq!(scaled(1, 3, 2), 1); // 0.67
        assert_eq!(scaled(1, 4, 2), 1); // 0.5 rounds up
        assert_eq!(scaled(1, 5, 2), 0); // 0.4
        assert_eq!(scaled(u64::MAX, 1, 2), u64::MAX);
        assert_eq!(scaled(5, 0, 2), 0);
        assert_eq!(gcd(12, 18), 6);
    }

    fn titles(svg: &str) -> Vec<String> {
        let options = roxmltree::ParsingOptions { allow_dtd: true, nodes_limit: u32::MAX };
        let doc = roxmltree::Document::parse_with_options(svg, options).expect("valid XML");
        doc.descendants().filter(|n| n.has_tag_name("title")).filter_map(|n| n.text()).map(str::to_string).collect()
    }

    #[test]
    fn svg_shows_current_counts_and_normalised_deltas() {
        let base = stacks(&[("main;a", 6), ("main;b", 3), ("main;gone", 1)]);
        let current = stacks(&[("main;a", 6), ("main;b", 10), ("main;new", 4)]);
        let t = Titles::new("diff", None);
        let svg = String::from_utf8(svg(&base, &current, &t, &Style::default()).expect("renders").0).expect("utf-8");
        let titles = titles(&svg);
        // a: 6 of 20 now (30%), was 6 of 10 (60%): -30 points of the total.
        for want in [
            "all (20 samples, 100%)",
            "a (6 samples, 30.00%; -30.00%)",
            "b (10 samples, 50.00%; +20.00%)",
            "new (4 samples, 20.00%; +20.00%)",
        ] {
            assert!(titles.iter().any(|t| t == want), "{want} in {titles:?}");
        }
    }

    #[test]
    fn svg_of_totals_too_large_to_scale_exactly_still_renders() {
        let base = stacks(&[("a", u64::MAX / 2), ("b", 7)]);
        let current = stacks(&[("a", u64::MAX / 3), ("b", 5)]);
        let t = Titles::new("diff", None);
        let svg = String::from_utf8(svg(&base, &current, &t, &Style::default()).expect("renders").0).expect("utf-8");
        assert!(titles(&svg).iter().any(|t| t.starts_with("all (")), "{}", &svg[..200.min(svg.len())]);
    }
}
