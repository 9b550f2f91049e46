//! Query results → folded stacks, inferno SVG, d3-flame-graph / Flink JSON.
//!
//! All output is deterministic: folded lines are sorted, SVG colours come from a hash of the
//! frame name (never from an RNG), JSON children are sorted by name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Stacks with their frame names resolved (root first) and their sample counts: a snapshot,
/// so that rendering holds no lock of the store.
pub type Stacks = Vec<(Vec<Arc<str>>, u64)>;

/// Output formats of `/flamegraph/<app>.<ext>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Folded,
    Json,
}

impl Format {
    /// Split `name.ext` into the name and the format.
    pub fn from_file_name(file: &str) -> Option<(&str, Format)> {
        let (name, ext) = file.rsplit_once('.')?;
        let format = match ext {
            "svg" => Format::Svg,
            "folded" | "txt" => Format::Folded,
            "json" => Format::Json,
            _ => return None,
        };
        (!name.is_empty()).then_some((name, format))
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Svg => "image/svg+xml",
            Format::Folded => "text/plain; charset=utf-8",
            Format::Json => "application/json",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Folded => "folded",
            Format::Json => "json",
        }
    }
}

/// Titles of a rendered flame graph.
#[derive(Clone, Debug)]
pub struct Titles {
    pub title: String,
    pub subtitle: Option<String>,
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
    let mut lines: Vec<(String, u64)> = stacks
        .iter()
        .map(|(frames, count)| {
            let mut line = String::new();
            for (i, frame) in frames.iter().enumerate() {
                if i > 0 {
                    line.push(';');
                }
                folded_frame(&mut line, frame);
            }
            (line, *count)
        })
        .collect();
    lines.sort_unstable();
    let mut out = String::with_capacity(lines.iter().map(|(l, _)| l.len() + 12).sum());
    let mut iter = lines.into_iter().peekable();
    while let Some((line, mut count)) = iter.next() {
        // Two stacks that differ only in sanitised characters merge into one line.
        while iter.peek().is_some_and(|(next, _)| *next == line) {
            count += iter.next().map_or(0, |(_, c)| c);
        }
        let _ = writeln!(out, "{line} {count}");
    }
    out
}

/// An interactive SVG flame graph (zoom, search) of folded text.
pub fn svg(folded: &str, titles: &Titles) -> std::io::Result<Vec<u8>> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = titles.title.clone();
    opts.subtitle = titles.subtitle.clone();
    opts.colors = inferno::flamegraph::color::Palette::Multi(inferno::flamegraph::color::MultiPalette::Java);
    opts.hash = true;
    opts.deterministic = true;
    opts.count_name = "samples".into();
    let mut out = Vec::with_capacity(folded.len() * 2 + 16 * 1024);
    inferno::flamegraph::from_lines(&mut opts, folded.lines(), &mut out)?;
    Ok(out)
}

#[derive(Default)]
struct Node {
    value: u64,
    /// Sorted by name, so that the same data gives the same bytes.
    children: BTreeMap<Arc<str>, Node>,
}

/// d3-flame-graph JSON (inclusive values, root named "root"), as Flink's flame graph `data`.
pub fn json(stacks: &Stacks) -> String {
    let mut root = Node::default();
    for (frames, count) in stacks {
        root.value += count;
        let mut node = &mut root;
        for frame in frames {
            node = node.children.entry(Arc::clone(frame)).or_default();
            node.value += count;
        }
    }
    let mut out = String::with_capacity(64 * 1024);
    write_node(&mut out, "root", &root);
    out
}

fn write_node(out: &mut String, name: &str, node: &Node) {
    out.push_str("{\"name\":");
    out.push_str(&serde_json::Value::from(name).to_string());
    let _ = write!(out, ",\"value\":{},\"children\":[", node.value);
    for (i, (child_name, child)) in node.children.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_node(out, child_name, child);
    }
    out.push_str("]}");
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
        let text = "java.util.ArrayList.<init>:166;<script>alert(1)</script> 3\na&b;c 1\n";
        let titles = Titles { title: "app <x> & y".into(), subtitle: Some("3 samples".into()) };
        let one = svg(text, &titles).expect("renders");
        let two = svg(text, &titles).expect("renders");
        assert_eq!(one, two, "same data, same bytes");
        let s = String::from_utf8(one).expect("utf-8");
        assert!(s.contains("java.util.ArrayList.&lt;init&gt;:166"), "escaped <init>");
        assert!(!s.contains("<script>alert"), "frame text cannot inject markup");
        assert!(s.contains("app &lt;x&gt; &amp; y"), "escaped title");
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
