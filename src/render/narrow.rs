//! Subtrees too narrow to draw, collapsed before the SVG renderer sees them.
//!
//! The renderer merges folded lines into frames (a frame lasts while consecutive lines share it)
//! and then drops every frame narrower than `min_width` percent of the total. Nothing under a
//! frame is wider than the frame, so once a frame is too narrow nothing under it is drawn, yet
//! the renderer parses every line under it and builds every frame of them. Profiles of many
//! distinct stacks are mostly such lines: at 50,000 stacks a typical stack is 0.002 % of the
//! graph, and the default `min_width` is 0.01 %.
//!
//! [`collapse`] cuts the lines under each outermost narrow frame down to one line that ends
//! with that frame and carries their summed count, and fuses neighbouring narrow siblings into
//! the first of them while their sum is still too narrow to draw. Every frame that is drawn
//! keeps its start and end, the total is the same, and nothing cut was drawn, so the SVG is
//! byte for byte the same (the tests render both and compare). The cut lines are no longer in
//! sorted order, so the renderer must take them in the order given ([`super::svg_styled`]).

/// Lines (sorted and merged as the renderer would merge them: frames joined by `;`, counts
/// already scaled so that their sum fits a u64) with the frames too narrow to draw at
/// `min_width_pct` percent cut away.
pub fn collapse(mut lines: Vec<(String, u64)>, min_width_pct: f64) -> Vec<(String, u64)> {
    let total = lines.iter().fold(0u64, |sum, (_, c)| sum.saturating_add(*c));
    if total == 0 {
        return lines;
    }
    // The renderer's own arithmetic, so that "too narrow" means exactly what it means there.
    let widthpertime_pct = 100.0 / total as f64;
    let minwidth_time = min_width_pct / widthpertime_pct;
    let narrow = |samples: u64| (samples as f64) < minwidth_time;
    let runs = narrow_runs(&lines, narrow);
    if runs.is_empty() {
        return lines;
    }
    // Decide first (the lines are read), then move the kept lines out.
    let mut groups: Vec<Group> = Vec::new();
    for run in runs {
        let sum = lines[run.first..run.end].iter().fold(0u64, |s, (_, c)| s.saturating_add(*c));
        if let Some(g) = groups.last_mut() {
            let sibling = g.end == run.first && g.depth == run.depth && same_parent(&lines[g.first].0, &lines[run.first].0, run.depth);
            // The group would end with this run, so the line after it must not continue the
            // group's frame (a name can come back after a sibling: `m:1`, `m:10`, `m:1;x` sort
            // so, and `m:1` is two frames).
            let after_differs = lines.get(run.end).is_none_or(|(after, _)| !same_frame(&lines[g.first].0, after, run.depth));
            if sibling && narrow(g.sum.saturating_add(sum)) && after_differs {
                g.sum = g.sum.saturating_add(sum);
                g.end = run.end;
                continue;
            }
        }
        groups.push(Group { first: run.first, end: run.end, depth: run.depth, sum });
    }
    let kept = lines.len() - groups.iter().map(|g| g.end - g.first - 1).sum::<usize>();
    let mut out = Vec::with_capacity(kept);
    let mut next = 0; // the first line not yet written
    for g in groups {
        out.extend(lines[next..g.first].iter_mut().map(std::mem::take));
        let mut line = std::mem::take(&mut lines[g.first].0);
        line.truncate(cut(&line, g.depth));
        out.push((line, g.sum));
        next = g.end;
    }
    out.extend(lines[next..].iter_mut().map(std::mem::take));
    out
}

/// Consecutive narrow sibling frames at one depth (or one alone), written as one line: the
/// first line of the first, cut after that frame, with the count of them all.
struct Group {
    first: usize,
    end: usize,
    depth: usize,
    sum: u64,
}

/// An outermost narrow frame: the lines `[first, end)` are under it, at `depth` (0: a root
/// frame).
struct Run {
    first: usize,
    end: usize,
    depth: usize,
}

/// The outermost narrow frames, in order. Walks the lines as the renderer merges them: a frame
/// opens at the line where it first appears and closes at the first line that does not share
/// it (with all its ancestors).
fn narrow_runs(lines: &[(String, u64)], narrow: impl Fn(u64) -> bool) -> Vec<Run> {
    // Open frames from the root: (start time, line where it opened).
    let mut open: Vec<(u64, usize)> = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut close = |open: &mut Vec<(u64, usize)>, keep: usize, time: u64, line: usize| {
        while open.len() > keep {
            let Some((start, first)) = open.pop() else { break };
            if narrow(time - start) {
                // Frames close deepest first: runs recorded inside this one are replaced by it.
                while runs.last().is_some_and(|r| r.first >= first) {
                    runs.pop();
                }
                runs.push(Run { first, end: line, depth: open.len() });
            }
        }
    };
    let mut time = 0u64;
    let mut previous: Option<&str> = None;
    for (i, (line, count)) in lines.iter().enumerate() {
        let (shared, depth) = match previous {
            None => (0, line.split(';').count()),
            Some(prev) => shared_frames(prev, line),
        };
        close(&mut open, shared, time, i);
        open.resize(depth, (time, i));
        time = time.saturating_add(*count);
        previous = Some(line);
    }
    close(&mut open, 0, time, lines.len());
    runs
}

/// How many leading frames `a` and `b` share, and how many frames `b` has.
fn shared_frames(a: &str, b: &str) -> (usize, usize) {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let common = common_prefix(a, b);
    let boundary = |s: &[u8]| s.get(common).is_none_or(|&c| c == b';');
    let semis = memchr::memchr_iter(b';', &b[..common]).count();
    let shared = semis + usize::from(boundary(a) && boundary(b));
    (shared, semis + 1 + memchr::memchr_iter(b';', &b[common..]).count())
}

/// The length of the longest common prefix of `a` and `b`, eight bytes at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes")) ^ u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Where to cut `line` after its frame at `depth`: there, unless the renderer would read the
/// cut line otherwise than as those frames (it trims whitespace off a stack's end, drops an
/// empty stack and takes `# …` for a comment); then nowhere, as the whole line is exact too
/// (everything below the frame is narrow as well).
fn cut(line: &str, depth: usize) -> usize {
    let kept = through(line, depth);
    if kept.is_empty() || kept == "#" || kept.ends_with(char::is_whitespace) {
        return line.len();
    }
    kept.len()
}

/// `line` up to the end of its frame at `depth` (the whole line if it has no deeper frame).
fn through(line: &str, depth: usize) -> &str {
    match memchr::memchr_iter(b';', line.as_bytes()).nth(depth) {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Whether `b` has the frames of `a` above `depth` (the same parent frame at `depth`).
fn same_parent(a: &str, b: &str, depth: usize) -> bool {
    depth == 0 || {
        let parent = through(a, depth - 1);
        b.len() > parent.len() && b.as_bytes()[parent.len()] == b';' && b.starts_with(parent)
    }
}

/// Whether `b` has the frames of `a` down to `depth` (the same frame at `depth`).
fn same_frame(a: &str, b: &str, depth: usize) -> bool {
    let frame = through(a, depth);
    b.starts_with(frame) && b.as_bytes().get(frame.len()).is_none_or(|&c| c == b';')
}

/// The frames the renderer draws of `lines` (merged as it merges them: a frame lasts while
/// consecutive lines share it with all its ancestors): each frame's samples and the bytes of
/// its name.
fn frames<'a>(lines: impl Iterator<Item = (&'a str, u64)>) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    // Open frames from the root: (bytes of the name, samples so far).
    let mut open: Vec<(usize, u64)> = Vec::new();
    let close = |open: &mut Vec<(usize, u64)>, out: &mut Vec<(u64, usize)>, keep: usize| {
        while open.len() > keep {
            let Some((len, samples)) = open.pop() else { break };
            out.push((samples, len));
            if let Some(parent) = open.last_mut() {
                parent.1 = parent.1.saturating_add(samples);
            }
        }
    };
    let mut previous: Option<&str> = None;
    for (line, count) in lines {
        let (shared, _) = previous.map_or((0, 0), |prev| shared_frames(prev, line));
        close(&mut open, &mut out, shared);
        open.extend(line.split(';').skip(shared).map(|f| (f.len(), 0)));
        if let Some(leaf) = open.last_mut() {
            leaf.1 = leaf.1.saturating_add(count);
        }
        previous = Some(line);
    }
    close(&mut open, &mut out, 0);
    out
}

/// What a flame graph may hold: frames drawn, and about how many bytes they take.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub max_frames: usize,
    pub max_bytes: usize,
}

/// Bytes a drawn frame takes besides its name, which it holds twice (its tooltip and its
/// label): a `<g>` with a `<title>`, a `<rect>` and a `<text>`.
const FRAME_BYTES: usize = 200;

/// A frame's share of a graph's size.
fn frame_bytes(name_len: usize) -> usize {
    FRAME_BYTES + 2 * name_len
}

/// When `lines` (of `total` samples, drawn at `min_width_pct`) hold more frames than `budget`
/// allows: the narrowest width at which they do not, with the frames drawn then and before.
pub fn within<'a>(lines: impl Iterator<Item = (&'a str, u64)>, total: u64, min_width_pct: f64, budget: Budget) -> Option<Cut> {
    if total == 0 {
        return None;
    }
    // The renderer's own arithmetic (see `collapse`).
    let minwidth_time = min_width_pct / (100.0 / total as f64);
    let mut drawn: Vec<(u64, usize)> = frames(lines).into_iter().filter(|(samples, _)| *samples as f64 >= minwidth_time).collect();
    let bytes: usize = drawn.iter().map(|(_, len)| frame_bytes(*len)).sum();
    if drawn.len() <= budget.max_frames && bytes <= budget.max_bytes {
        return None;
    }
    drawn.sort_unstable_by_key(|(samples, _)| std::cmp::Reverse(*samples));
    let mut bytes = 0usize;
    let first_left_out = drawn
        .iter()
        .position(|(_, len)| {
            bytes += frame_bytes(*len);
            bytes > budget.max_bytes
        })
        .unwrap_or(drawn.len())
        .min(budget.max_frames);
    // Every frame as narrow as the first left out goes too (ties are not split).
    let threshold = drawn[first_left_out].0;
    let kept = drawn.iter().take_while(|(samples, _)| *samples > threshold).count();
    // Drawn from `threshold + 1` samples on: half a sample below, safe from rounding.
    let pct = (threshold as f64 + 0.5) * (100.0 / total as f64);
    Some(Cut { min_width_pct: pct.max(min_width_pct), drawn: kept, frames: drawn.len() })
}

/// A graph cut down to its budget: the width frames are drawn from, and how many are drawn of
/// how many there were.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cut {
    pub min_width_pct: f64,
    pub drawn: usize,
    pub frames: usize,
}

impl Cut {
    /// What the subtitle says of it.
    pub fn note(&self) -> String {
        format!(
            "{} of {} frames drawn (the narrowest left out: --max-render-frames, or a frame of at least {:.4} %)",
            self.drawn, self.frames, self.min_width_pct
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(l, c)| (l.to_string(), *c)).collect()
    }

    #[test]
    fn narrow_frames_are_cut_and_their_siblings_fused() {
        // Total 1,000; 1 % is 10 samples. `a;x` holds 4: its three lines become `a;x`. `a;y`
        // holds 30 and stays, its children `p` (3) and `q` (2) are cut and fused into `p` (5,
        // still narrow). `b` and `c` (6 each) are narrow roots but together 12, so not fused.
        let input = lines(&[
            ("a;x;1", 1),
            ("a;x;2", 2),
            ("a;x;2;deeper", 1),
            ("a;y", 25),
            ("a;y;p", 1),
            ("a;y;p;r", 2),
            ("a;y;q", 2),
            ("b;1", 6),
            ("c;1", 6),
            ("z", 954),
        ]);
        assert_eq!(collapse(input, 1.0), lines(&[("a;x", 4), ("a;y", 25), ("a;y;p", 5), ("b", 6), ("c", 6), ("z", 954)]));
    }

    #[test]
    fn a_frame_that_comes_back_after_a_sibling_is_not_fused_into() {
        // `m:1`, `m:10`, `m:1;x` sort in that order, so `m:1` is two frames; fusing `m:10` into
        // the first would join it to the second.
        let input = lines(&[("r;m:1", 1), ("r;m:10", 1), ("r;m:1;x", 1), ("s", 1_000)]);
        assert_eq!(collapse(input, 1.0), lines(&[("r", 3), ("s", 1_000)]));
        let input = lines(&[("r", 100), ("r;m:1", 1), ("r;m:10", 1), ("r;m:1;x", 1), ("s", 1_000)]);
        assert_eq!(collapse(input, 1.0), lines(&[("r", 100), ("r;m:1", 1), ("r;m:10", 2), ("s", 1_000)]));
    }

    #[test]
    fn a_cut_the_renderer_would_read_differently_keeps_the_whole_line() {
        // An empty first frame, `#` (a comment line to the renderer) and a frame ending in
        // whitespace (trimmed by the renderer) are not cut after.
        let input = lines(&[(";b", 3), ("a", 500), ("#;x", 2), ("b", 500), ("c;\t;y", 1), ("c;\t;z", 1), ("c;w", 30), ("z", 10_000)]);
        assert_eq!(collapse(input, 1.0), lines(&[(";b", 3), ("a", 500), ("#;x", 2), ("b", 500), ("c", 32), ("z", 10_000)]));
        let input = lines(&[("a;\t;y", 1), ("a;\t;z", 1), ("a;w", 300), ("z", 10_000)]);
        assert_eq!(collapse(input, 1.0), lines(&[("a;\t;y", 2), ("a;w", 300), ("z", 10_000)]));
    }

    #[test]
    fn frames_are_counted_as_the_renderer_merges_them() {
        let input = lines(&[("a;b", 2), ("a;b;c", 3), ("a;d", 1), ("e", 4)]);
        let mut f = frames(input.iter().map(|(l, c)| (l.as_str(), *c)));
        f.sort();
        // a (6: b 5 with c 3, d 1), e (4).
        assert_eq!(f, [(1, 1), (3, 1), (4, 1), (5, 1), (6, 1)]);
    }

    #[test]
    fn a_graph_over_its_budget_keeps_its_widest_frames() {
        let input = lines(&[("a;b", 2), ("a;b;c", 3), ("a;d", 1), ("e", 4)]);
        let each = || input.iter().map(|(l, c)| (l.as_str(), *c));
        let budget = |max_frames| Budget { max_frames, max_bytes: usize::MAX };
        assert_eq!(within(each(), 10, 0.0, budget(5)), None);
        // Three frames: a (6), b (5), e (4); c (3) and d (1) left out, from 3.5 samples of 10.
        let cut = within(each(), 10, 0.0, budget(3)).expect("over");
        assert_eq!((cut.drawn, cut.frames), (3, 5));
        assert!((cut.min_width_pct - 35.0).abs() < 1e-9, "{cut:?}");
        // The same cut applied by `collapse` draws just those.
        let kept = collapse(input.clone(), cut.min_width_pct);
        let mut f = frames(kept.iter().map(|(l, c)| (l.as_str(), *c)));
        f.retain(|(samples, _)| *samples as f64 >= 3.5);
        assert_eq!(f.len(), 3);
        // Bytes count too: each frame here costs 202.
        let cut = within(each(), 10, 0.0, Budget { max_frames: 100, max_bytes: 500 }).expect("over");
        assert_eq!((cut.drawn, cut.frames), (2, 5));
    }

    #[test]
    fn nothing_is_narrow_at_zero_width() {
        let input = lines(&[("a;b", 0), ("a;c", 1), ("a;c;d", 0), ("e", 1_000_000)]);
        assert_eq!(collapse(input.clone(), 0.0), input);
    }

    /// Stacks of many narrow leaves over names that differ only after a prefix (`m:1`, `m:10`,
    /// `m:1.x`: they sort around `;`, so a frame can come back after a sibling), with empty
    /// frames: the renderer draws exactly the same SVG from the collapsed lines, in the order
    /// given, as from all the sorted lines.
    #[test]
    fn the_renderer_draws_the_same_svg() {
        let names = ["m:1", "m:10", "m:1.x", "m", "m.x", "", "n;", "z", "m:12", "#", "\t", "w\u{3000}"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for (round, min_width) in [0.01, 0.1, 1.0, 5.0, 0.0].into_iter().enumerate() {
            let mut stacks: Vec<(String, u64)> = (0..3_000)
                .map(|_| {
                    let depth = 1 + next(12) as usize;
                    let frames: Vec<&str> = (0..depth).map(|_| names[next(names.len() as u64) as usize]).collect();
                    let count = if next(50) == 0 { 500 + next(5_000) } else { next(4) };
                    // As `svg_lines` makes them: trimmed, and a stack of just `#` (a comment line
                    // to the renderer) written `＃`.
                    let stack = match frames.join(";").trim() {
                        "#" => "\u{ff03}".to_string(),
                        s => s.to_string(),
                    };
                    (stack, count)
                })
                .filter(|(s, _)| !s.is_empty())
                .collect();
            stacks.sort();
            stacks.dedup_by(|b, a| {
                let same = a.0 == b.0;
                if same {
                    a.1 += b.1;
                }
                same
            });
            let options = || {
                let mut opts = inferno::flamegraph::Options::default();
                opts.deterministic = true;
                opts.hash = true;
                opts.min_width = min_width;
                opts
            };
            let mut all = Vec::new();
            let text: Vec<String> = stacks.iter().map(|(l, c)| format!("{l} {c}")).collect();
            let mut opts = options();
            opts.no_sort = true;
            inferno::flamegraph::from_lines(&mut opts, text.iter().map(String::as_str), &mut all).expect("renders");

            let collapsed = collapse(stacks.clone(), min_width);
            if min_width > 0.0 {
                assert!(collapsed.len() < stacks.len() / 3, "round {round}: {} of {} lines left", collapsed.len(), stacks.len());
            } else {
                assert_eq!(collapsed.len(), stacks.len());
            }
            let input: String = collapsed.iter().map(|(l, c)| format!("{l} {c}\n")).collect();
            let mut cut = Vec::new();
            super::super::draw_in_order(&mut options(), &input, &mut cut).expect("renders");
            if cut != all {
                let text = |b: &[u8]| String::from_utf8_lossy(b).lines().map(str::to_string).collect::<Vec<_>>();
                let (a, c) = (text(&all), text(&cut));
                let at = a.iter().zip(&c).position(|(x, y)| x != y).unwrap_or(0);
                panic!("round {round}: the SVGs differ at line {at}:\n{:?}\n{:?}", a.get(at), c.get(at));
            }
        }
    }
}
