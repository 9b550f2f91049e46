//! Query results → folded stacks, inferno SVG, d3-flame-graph / Flink JSON.
//!
//! All output is deterministic: folded lines are sorted, SVG colours come from a hash of the
//! frame name (never from an RNG), JSON children are sorted by name.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

pub mod diff;
pub mod narrow;
pub mod options;
pub mod tree;

pub use options::{ColorHash, Options, Shape, Style};

/// Stacks with their frame names resolved (root first) and their sample counts: a snapshot,
/// so that rendering holds no lock of the store.
pub type Stacks = Vec<(Vec<Arc<str>>, u64)>;

/// Output formats of `/flamegraph/<app>.<ext>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Folded,
    Json,
    /// The explorer's: levels of the merged tree, functions, the sandwich ([`tree`]).
    Tree,
}

impl Format {
    /// Split `name.ext` into the name and the format.
    pub fn from_file_name(file: &str) -> Option<(&str, Format)> {
        let (name, ext) = file.rsplit_once('.')?;
        let format = match ext {
            "svg" => Format::Svg,
            "folded" | "txt" => Format::Folded,
            "json" => Format::Json,
            "tree" => Format::Tree,
            _ => return None,
        };
        (!name.is_empty()).then_some((name, format))
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Svg => "image/svg+xml",
            Format::Folded => "text/plain; charset=utf-8",
            Format::Json | Format::Tree => "application/json",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Folded => "folded",
            Format::Json => "json",
            Format::Tree => "tree",
        }
    }
}

/// Titles of a rendered flame graph, and how much it may draw.
#[derive(Clone, Debug)]
pub struct Titles {
    pub title: String,
    pub subtitle: Option<String>,
    /// Frames drawn at most (`--max-render-frames`): beyond, the narrowest are left out, and
    /// the subtitle says how many were drawn of how many.
    pub max_frames: usize,
    /// What the counts are, in tooltips (`samples`, `bytes`, …: the profile type's unit).
    pub count_name: &'static str,
}

/// About the most bytes one SVG takes (frames beyond are left out as beyond
/// [`Titles::max_frames`]): the size of a graph of 200,000 frames of typical JVM names.
pub const MAX_SVG_BYTES: usize = 64 << 20;

impl Titles {
    pub fn new(title: impl Into<String>, subtitle: Option<String>) -> Self {
        Titles { title: title.into(), subtitle, max_frames: usize::MAX, count_name: "samples" }
    }

    fn budget(&self) -> narrow::Budget {
        narrow::Budget { max_frames: self.max_frames, max_bytes: MAX_SVG_BYTES }
    }
}

/// A frame as written into folded text: `;` would split it and a line break would end the line,
/// so both become `_`.
fn folded_frame(out: &mut String, frame: &str) {
    if frame.contains([';', '\n', '\r']) {
        out.extend(frame.chars().map(|c| if matches!(c, ';' | '\n' | '\r') { '_' } else { c }));
    } else {
        out.push_str(frame);
    }
}

/// `frame;frame;frame count` lines, root first, sorted bytewise; equal stacks merged.
pub fn folded(stacks: &Stacks) -> String {
    let lines = joined(stacks, folded_frame, |line| line);
    let mut out = String::with_capacity(lines.iter().map(|(l, _)| l.len() + 12).sum());
    for (line, count) in lines {
        let _ = writeln!(out, "{line} {count}");
    }
    out
}

/// Profiles of at least this many stacks build their lines on two threads.
const PARALLEL_FROM: usize = 8_192;

/// Each stack as one line of its frames joined by `;` (each written by `frame`, the whole line
/// then passed through `finish`), sorted bytewise, equal lines merged: two stacks that differ
/// only in sanitised characters become one line, their counts added (saturating). Large
/// profiles are built and sorted in two halves at once, then merged.
fn joined(stacks: &Stacks, frame: fn(&mut String, &str), finish: fn(String) -> String) -> Vec<(String, u64)> {
    let build = |part: &[(Vec<Arc<str>>, u64)]| -> Vec<(String, u64)> {
        let mut lines: Vec<(String, u64)> = part
            .iter()
            .map(|(frames, count)| {
                let mut line = String::with_capacity(frames.iter().map(|f| f.len() + 1).sum());
                for (i, f) in frames.iter().enumerate() {
                    if i > 0 {
                        line.push(';');
                    }
                    frame(&mut line, f);
                }
                (finish(line), *count)
            })
            .collect();
        lines.sort_unstable();
        lines
    };
    let sorted = if stacks.len() >= PARALLEL_FROM {
        let (first, second) = stacks.split_at(stacks.len() / 2);
        std::thread::scope(|scope| {
            // Without a second thread (none can be started), the caller's builds both halves.
            let other = std::thread::Builder::new().name("stackd-render".into()).spawn_scoped(scope, || build(second));
            let a = build(first);
            let b = match other {
                Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => build(second),
            };
            merge_sorted(a, b)
        })
    } else {
        build(stacks)
    };
    let mut merged: Vec<(String, u64)> = Vec::with_capacity(sorted.len());
    for (line, count) in sorted {
        match merged.last_mut() {
            Some((last, total)) if *last == line => *total = total.saturating_add(count),
            _ => merged.push((line, count)),
        }
    }
    merged
}

/// Two sorted lists as one sorted list.
fn merge_sorted<T: Ord>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x <= y => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(item) => out.push(item),
            None => return out,
        }
    }
}

/// An interactive SVG flame graph (zoom, search) of `stacks`, in the default style.
pub fn svg(stacks: &Stacks, titles: &Titles) -> std::io::Result<Vec<u8>> {
    svg_styled(stacks, titles, &Style::default()).map(|(svg, _)| svg)
}

/// An interactive SVG flame graph (zoom, search) of `stacks`, styled by the URL's options, and
/// what was left out to keep it within [`Titles::max_frames`], if anything.
pub fn svg_styled(stacks: &Stacks, titles: &Titles, style: &Style) -> std::io::Result<(Vec<u8>, Option<narrow::Cut>)> {
    let mut lines = svg_lines(stacks);
    // The renderer adds counts up in a u64 without checking: when they would overflow (only
    // near-saturated totals can), scale them all down alike.
    let overflows = lines.iter().try_fold(0u64, |sum, (_, c)| sum.checked_add(*c)).is_none();
    if overflows {
        let scale = lines.len() as u64 + 1;
        lines.iter_mut().for_each(|(_, c)| *c /= scale);
    }
    let mut opts = inferno_options(titles, style);
    let mut lines = narrow::collapse(lines, opts.min_width);
    let total = lines.iter().fold(0u64, |sum, (_, c)| sum.saturating_add(*c));
    let cut = narrow::within(lines.iter().map(|(l, c)| (l.as_str(), *c)), total, opts.min_width, titles.budget());
    if let Some(cut) = cut {
        opts.min_width = cut.min_width_pct;
        lines = narrow::collapse(lines, opts.min_width);
        opts.subtitle = Some(subtitle_with(opts.subtitle.take(), &cut));
    }
    let mut palette_map = (style.hash == ColorHash::Package).then(|| package_colors(&lines));
    let mut input = String::with_capacity(lines.iter().map(|(l, _)| l.len() + 21).sum());
    for (line, count) in lines {
        let _ = writeln!(input, "{line} {count}");
    }
    opts.palette_map = palette_map.as_mut();
    let mut out = Vec::with_capacity(input.len() * 2 + 16 * 1024);
    draw_in_order(&mut opts, &input, &mut out)?;
    Ok((safe_search(out), cut))
}

/// How the explorer and the SVG's own script match a search term ([`safe_search`]).
pub const SEARCH_JS: &str = include_str!("search.js");

/// The renderer's script runs a search term (the SVG's `s=` parameter, so any link) as a
/// browser regular expression, which a crafted one makes backtrack without end: it is made to
/// use [`SEARCH_JS`] instead. The script comes before the frames, once.
pub fn safe_search(mut svg: Vec<u8>) -> Vec<u8> {
    const FROM: &[u8] = b"function search(term) {\n    var re = new RegExp(term);";
    let head = svg.len().min(64 * 1024);
    let Some(at) = memchr::memmem::find(&svg[..head], FROM) else { return svg };
    let to = format!("{SEARCH_JS}function search(term) {{\n    var re = stackdPattern(term).re;");
    svg.splice(at..at + FROM.len(), to.into_bytes());
    svg
}

/// A subtitle (XML text already) with what a cut left out.
fn subtitle_with(subtitle: Option<String>, cut: &narrow::Cut) -> String {
    let note = xml_text(&cut.note()).into_owned();
    match subtitle {
        Some(s) => format!("{s}; {note}"),
        None => note,
    }
}

/// Render folded `input` with its lines merged in the order given, unsorted (the lines of
/// [`narrow::collapse`] are not in sorted order). inferno's flame-chart mode is exactly that:
/// it reverses the lines it is given and merges them without sorting or checking their order;
/// nothing else in it depends on the mode.
fn draw_in_order(opts: &mut inferno::flamegraph::Options<'_>, input: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
    opts.flame_chart = true;
    inferno::flamegraph::from_lines(opts, input.lines().rev(), out)
}

/// inferno's options for a style: deterministic colours, counts named by their unit, and no second
/// sort (the input is sorted here, as it must be to merge lines that became equal; the plain SVG
/// then hands its cut lines over in order, [`draw_in_order`]).
fn inferno_options<'a>(titles: &Titles, style: &Style) -> inferno::flamegraph::Options<'a> {
    use inferno::flamegraph::color::{MultiPalette, Palette};
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = xml_text(style.title.as_deref().unwrap_or(&titles.title)).into_owned();
    opts.subtitle = titles.subtitle.as_deref().map(|s| xml_text(s).into_owned());
    opts.colors = style.colors.and_then(|p| p.parse().ok()).unwrap_or(Palette::Multi(MultiPalette::Java));
    opts.hash = style.hash != ColorHash::Off;
    opts.deterministic = true;
    opts.count_name = titles.count_name.into();
    opts.no_sort = true;
    opts.image_width = style.width;
    if let Some(bits) = style.min_width_bits {
        opts.min_width = f64::from_bits(bits);
    }
    if style.inverted {
        opts.direction = inferno::flamegraph::Direction::Inverted;
    }
    opts
}

/// `hash=package`: one colour per package, from a hash of its name (the same package has the
/// same colour in every graph), for every frame of the renderer's input lines.
fn package_colors(lines: &[(String, u64)]) -> inferno::flamegraph::color::PaletteMap {
    let mut map = inferno::flamegraph::color::PaletteMap::default();
    for (stack, _) in lines {
        for frame in stack.split(';') {
            if map.get(frame).is_none() {
                map.insert(frame, package_color(options::package(frame)));
            }
        }
    }
    map
}

/// A warm colour (the "hot" palette's range) chosen by a hash of `package`.
fn package_color(package: &str) -> inferno::flamegraph::color::Color {
    let h = xxhash_rust::xxh3::xxh3_64(package.as_bytes());
    let v = |shift: u32| ((h >> shift) & 0xff) as f32 / 255.0;
    inferno::flamegraph::color::Color { r: 205 + (50.0 * v(0)) as u8, g: (230.0 * v(8)) as u8, b: (55.0 * v(16)) as u8 }
}

/// Folded lines as the SVG renderer must see them, whatever the frames hold. Its parser takes
/// the text after the last space as the count (and a number before that as a differential
/// baseline), trims each line, and wants lines sorted after trimming. So spaces inside frames
/// become no-break spaces, whitespace at either end of a stack is dropped (a stack left empty
/// is `[blank]`), a stack that is just `#` (a comment line to the renderer) becomes the
/// full-width `＃`, `;` and line breaks become `_` as in folded output, and characters XML
/// forbids become U+FFFD.
fn svg_lines(stacks: &Stacks) -> Vec<(String, u64)> {
    let svg_frame = |out: &mut String, frame: &str| {
        // Most frames hold nothing to replace: no space, `;`, control character, or the 0xEF
        // lead byte of U+FFFE / U+FFFF.
        if !frame.bytes().any(|b| b <= b' ' || b == b';' || b == 0xEF) {
            out.push_str(frame);
            return;
        }
        out.extend(xml_text(frame).chars().map(|c| match c {
            ';' | '\n' | '\r' => '_',
            ' ' => '\u{a0}',
            c => c,
        }))
    };
    let finish = |line: String| match line.trim() {
        "" => "[blank]".to_string(),
        // "# 4" would be read as a comment line.
        "#" => "\u{ff03}".to_string(),
        trimmed => trimmed.to_string(),
    };
    joined(stacks, svg_frame, finish)
}

/// Characters that XML 1.0 forbids (C0 controls other than tab, LF and CR; U+FFFE, U+FFFF)
/// become U+FFFD, so that text from agents can never make a document invalid. Borrows when
/// there is nothing to replace (the usual case).
pub fn xml_text(s: &str) -> Cow<'_, str> {
    let forbidden = |c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if !s.contains(forbidden) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if forbidden(c) { '\u{fffd}' } else { c }).collect())
}

/// d3-flame-graph JSON (inclusive values, root named "root"), as Flink's flame graph `data`.
/// Children are sorted by name, so the same data gives the same bytes. The tree is the
/// explorer's ([`tree::Tree`]).
pub fn json(stacks: &Stacks) -> String {
    let mut names = tree::Names::default();
    let root = names.id(&Arc::from("root"));
    let mut merged = tree::Tree::new(root);
    let mut ids: Vec<u32> = Vec::new();
    for (frames, count) in stacks {
        ids.clear();
        ids.extend(frames.iter().map(|f| names.id(f)));
        merged.add(ids.iter().copied(), *count, 0);
    }
    merged.sort_children(&names);
    let nodes = &merged.nodes;
    let open = |out: &mut String, node: &tree::Node| {
        out.push_str("{\"name\":");
        out.push_str(&serde_json::Value::from(&*names.list[node.name as usize]).to_string());
        let _ = write!(out, ",\"value\":{},\"children\":[", node.total[0]);
    };
    let mut out = String::with_capacity(64 * 1024);
    // Depth-first with an explicit stack of (node, next child to write).
    let mut path: Vec<(u32, usize)> = vec![(0, 0)];
    open(&mut out, &nodes[0]);
    while let Some((node, next)) = path.last_mut() {
        if let Some(&child) = nodes[*node as usize].children.get(*next) {
            if *next > 0 {
                out.push(',');
            }
            *next += 1;
            open(&mut out, &nodes[child as usize]);
            path.push((child, 0));
        } else {
            out.push_str("]}");
            path.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stacks(list: &[(&[&str], u64)]) -> Stacks {
        list.iter().map(|(frames, c)| (frames.iter().map(|f| Arc::from(*f)).collect(), *c)).collect()
    }

    #[test]
    fn folded_is_sorted_and_sanitised() {
        let s = stacks(&[(&["b", "a"], 2), (&["a", "b"], 5), (&["a", "x;y", "line\nbreak"], 1), (&["a", "x_y", "line_break"], 1)]);
        assert_eq!(folded(&s), "a;b 5\na;x_y;line_break 2\nb;a 2\n");
    }

    #[test]
    fn json_values_are_inclusive_like_flink() {
        let run = "java.lang.Thread.run:748";
        let task = "com.example.Task.run:10";
        let s = stacks(&[(&[run, task, "com.example.Task.work:20"], 5), (&[run, task], 2)]);
        assert_eq!(
            json(&s),
            r#"{"name":"root","value":7,"children":[{"name":"java.lang.Thread.run:748","value":7,"children":[{"name":"com.example.Task.run:10","value":7,"children":[{"name":"com.example.Task.work:20","value":5,"children":[]}]}]}]}"#
        );
    }

    #[test]
    fn svg_escapes_markup_and_is_deterministic() {
        let text = stacks(&[(&["java.util.ArrayList.<init>:166", "<script>alert(1)</script>"], 3), (&["a&b", "c"], 1)]);
        let titles = Titles::new("app <x> & y", Some("3 samples".into()));
        let one = svg(&text, &titles).expect("renders");
        let two = svg(&text, &titles).expect("renders");
        assert_eq!(one, two, "same data, same bytes");
        let s = String::from_utf8(one).expect("utf-8");
        assert!(s.contains("java.util.ArrayList.&lt;init&gt;:166"), "escaped <init>");
        assert!(!s.contains("<script>alert"), "frame text cannot inject markup");
        assert!(s.contains("app &lt;x&gt; &amp; y"), "escaped title");
    }

    #[test]
    fn a_graph_is_cut_to_its_frame_budget_and_says_so() {
        // 100 root frames of 1..=100 samples: at most 10 drawn, the widest.
        let names: Vec<String> = (1..=100).map(|i| format!("f{i}")).collect();
        let list: Vec<(Vec<&str>, u64)> = names.iter().zip(1u64..).map(|(n, i)| (vec![n.as_str()], i)).collect();
        let s: Stacks = list.iter().map(|(f, c)| (f.iter().map(|x| Arc::from(*x)).collect(), *c)).collect();
        let titles = Titles { max_frames: 10, ..Titles::new("t", Some("5050 samples".into())) };
        let (out, cut) = svg_styled(&s, &titles, &Style { min_width_bits: Some(0f64.to_bits()), ..Style::default() }).expect("renders");
        let cut = cut.expect("over budget");
        assert_eq!((cut.drawn, cut.frames), (10, 100));
        let out = String::from_utf8(out).expect("utf-8");
        // The root `all` and the ten widest.
        assert_eq!(out.matches("fg:w=").count(), 11, "{out}");
        assert!(out.contains(">f91 (91 samples") && !out.contains(">f90 ("), "the widest kept");
        assert!(out.contains("5050 samples; 10 of 100 frames drawn (the narrowest left out"), "the subtitle says so");
        assert!(out.contains("all (5,050 samples, 100%)"), "every sample still counted");
        let (_, cut) = svg_styled(&s, &Titles::new("t", None), &Style::default()).expect("renders");
        assert_eq!(cut, None, "within the default budget");
    }

    #[test]
    fn the_search_term_is_matched_by_stackds_rules() {
        let out = String::from_utf8(svg(&stacks(&[(&["a"], 1)]), &Titles::new("t", None)).expect("renders")).expect("utf-8");
        assert!(!out.contains("new RegExp(term)"), "the renderer's own matching is replaced");
        assert!(out.contains("function stackdPattern(term)") && out.contains("var re = stackdPattern(term).re;"));
        let options = roxmltree::ParsingOptions { allow_dtd: true, nodes_limit: u32::MAX };
        let doc = roxmltree::Document::parse_with_options(&out, options).expect("still well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
    }

    #[test]
    fn frames_with_spaces_and_digits_keep_their_counts_in_the_svg() {
        // "b 12" once read as a differential line (baseline 12), and " " as no stack at all.
        let s = stacks(&[(&["a", "b 12"], 3), (&[" "], 4), (&[" x"], 5), (&["a;b"], 1), (&["#"], 2)]);
        let lines: Vec<(String, u64)> =
            [("[blank]", 4), ("a;b\u{a0}12", 3), ("a_b", 1), ("x", 5), ("\u{ff03}", 2)].iter().map(|(l, c)| (l.to_string(), *c)).collect();
        assert_eq!(svg_lines(&s), lines);
        let out = String::from_utf8(svg(&s, &Titles::new("t", None)).expect("renders")).expect("utf-8");
        assert!(out.contains("all (15 samples, 100%)"), "every sample counted");
    }

    #[test]
    fn file_names() {
        assert_eq!(Format::from_file_name("spark.app-42.7.svg"), Some(("spark.app-42.7", Format::Svg)));
        assert_eq!(Format::from_file_name("app.folded"), Some(("app", Format::Folded)));
        assert_eq!(Format::from_file_name("app.json"), Some(("app", Format::Json)));
        assert_eq!(Format::from_file_name("app"), None);
        assert_eq!(Format::from_file_name(".svg"), None);
        assert_eq!(Format::from_file_name("app.png"), None);
    }
}
