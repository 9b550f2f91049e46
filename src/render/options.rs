//! Render options of flame-graph URLs: what changes the stacks ([`Shape`]: every format) and how
//! the SVG looks ([`Style`]). Each is parsed from one query parameter; an invalid value is an
//! error that names the parameter and says what it takes.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::Stacks;

/// Largest accepted `include=` / `exclude=` pattern, and the compiled size it may reach: a
/// hostile pattern is refused, never slow (matching is linear-time).
const MAX_PATTERN_LEN: usize = 1024;
const MAX_PATTERN_COMPILED: usize = 1 << 20;

/// What changes the stacks before they are rendered, in every format.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// `lines=false`: frames that differ only by their `:<line>` suffix are one frame.
    pub lines: bool,
    /// `include=<regex>`: only stacks with a frame that matches.
    pub include: Option<Pattern>,
    /// `exclude=<regex>`: no stack with a frame that matches.
    pub exclude: Option<Pattern>,
    /// `reverse=true`: stacks leaf first (callers of the hot frames above them).
    pub reverse: bool,
    /// `max_depth=N`: stacks cut to their first N frames (after `reverse`).
    pub max_depth: Option<usize>,
}

impl Default for Shape {
    fn default() -> Self {
        Shape { lines: true, include: None, exclude: None, reverse: false, max_depth: None }
    }
}

/// How frames are coloured (`hash=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColorHash {
    /// By a hash of the frame's whole name (the default): a frame keeps its colour everywhere.
    #[default]
    Name,
    /// By a hash of the frame's package (`com.example.io` of `com.example.io.Reader.read:12`):
    /// all frames of a package share one colour.
    Package,
    /// By the palette alone, from a fixed seed (still deterministic).
    Off,
}

/// How the SVG looks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Style {
    /// `title=`: replaces the app's name as the title.
    pub title: Option<String>,
    /// `width=`: image width in pixels; without it the SVG fills the window.
    pub width: Option<usize>,
    /// `minwidth=`: frames narrower than this percentage of the total are left out, as bits of
    /// the `f64` (so that the key can be hashed).
    pub min_width_bits: Option<u64>,
    /// `inverted=true`: an icicle graph (roots at the top).
    pub inverted: bool,
    /// `colors=`: one of inferno's palettes.
    pub colors: Option<&'static str>,
    pub hash: ColorHash,
}

/// Everything a flame-graph URL can say besides the selection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Options {
    pub shape: Shape,
    pub style: Style,
}

/// The palettes `colors=` accepts (inferno's names).
pub const PALETTES: [&str; 16] =
    ["java", "hot", "mem", "io", "wakeup", "js", "perl", "python", "rust", "red", "green", "blue", "aqua", "yellow", "purple", "orange"];

/// A compiled frame filter, compared and hashed by its text.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub text: String,
    regex: Arc<regex::Regex>,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Pattern {}
impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.len() > MAX_PATTERN_LEN {
            return Err(format!("is {} bytes long; at most {MAX_PATTERN_LEN}", text.len()));
        }
        let regex = regex::RegexBuilder::new(text)
            .size_limit(MAX_PATTERN_COMPILED)
            .dfa_size_limit(MAX_PATTERN_COMPILED)
            .build()
            .map_err(|e| format!("is not a regular expression: {}", e.to_string().lines().last().unwrap_or("invalid")))?;
        Ok(Pattern { text: text.to_string(), regex: Arc::new(regex) })
    }

    fn matches(&self, frame: &str) -> bool {
        self.regex.is_match(frame)
    }
}

/// A `true`/`false` parameter (also `1`/`0`, `yes`/`no`, `on`/`off`; empty is true).
pub fn flag(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" | "on" | "" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("invalid {name}={value:?}: use true or false")),
    }
}

impl Options {
    /// Take `name=value` when it is a render option: `Ok(true)` when taken, `Ok(false)` when
    /// `name` is not an option, an error naming the option when its value is invalid.
    pub fn take(&mut self, name: &str, value: &str) -> Result<bool, String> {
        match name {
            "title" => self.style.title = Some(value.to_string()),
            "width" => {
                let w: usize = value.parse().ok().filter(|w| (100..=100_000).contains(w)).ok_or_else(|| {
                    format!(
                        "invalid width={value:?}: a whole number of pixels from 100 to 100000 (or no width: the graph fills the window)"
                    )
                })?;
                self.style.width = Some(w);
            }
            "minwidth" => {
                let v: f64 =
                    value.trim_end_matches('%').parse().ok().filter(|v: &f64| v.is_finite() && (0.0..=100.0).contains(v)).ok_or_else(
                        || format!("invalid minwidth={value:?}: a percentage of the total from 0 to 100, like 0.1 or 0.1% (default 0.01)"),
                    )?;
                self.style.min_width_bits = Some(v.to_bits());
            }
            "inverted" => self.style.inverted = flag(name, value)?,
            "reverse" => self.shape.reverse = flag(name, value)?,
            "lines" => self.shape.lines = flag(name, value)?,
            "colors" => {
                let p = PALETTES
                    .iter()
                    .find(|p| **p == value)
                    .ok_or_else(|| format!("invalid colors={value:?}: one of {}", PALETTES.join(", ")))?;
                self.style.colors = Some(p);
            }
            "hash" => {
                self.style.hash = match value {
                    "true" | "1" | "name" | "" => ColorHash::Name,
                    "package" => ColorHash::Package,
                    "false" | "0" => ColorHash::Off,
                    _ => return Err(format!("invalid hash={value:?}: name (the default), package, or false")),
                }
            }
            "include" | "exclude" => {
                let p = Pattern::new(value).map_err(|e| format!("invalid {name}={value:?}: {e}"))?;
                if name == "include" {
                    self.shape.include = Some(p);
                } else {
                    self.shape.exclude = Some(p);
                }
            }
            "max_depth" => {
                let d: usize = value
                    .parse()
                    .ok()
                    .filter(|d| *d >= 1)
                    .ok_or_else(|| format!("invalid max_depth={value:?}: a whole number of frames, at least 1"))?;
                self.shape.max_depth = Some(d);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Shape {
    /// Whether the stacks are kept as stored.
    pub fn is_identity(&self) -> bool {
        *self == Shape::default()
    }

    /// The stacks as this shape sees them. Stacks that become equal are merged later by the
    /// renderers; filters look at the frames before `reverse` and `max_depth`.
    pub fn apply(&self, stacks: Stacks) -> Stacks {
        if self.is_identity() {
            return stacks;
        }
        let mut stripped: std::collections::HashMap<Arc<str>, Arc<str>> = std::collections::HashMap::new();
        stacks
            .into_iter()
            .filter_map(|(mut frames, count)| {
                if !self.lines {
                    for f in &mut frames {
                        if let Some(cut) = without_line(f) {
                            *f = Arc::clone(stripped.entry(Arc::clone(f)).or_insert_with(|| Arc::from(cut)));
                        }
                    }
                }
                if let Some(p) = &self.include {
                    if !frames.iter().any(|f| p.matches(f)) {
                        return None;
                    }
                }
                if let Some(p) = &self.exclude {
                    if frames.iter().any(|f| p.matches(f)) {
                        return None;
                    }
                }
                if self.reverse {
                    frames.reverse();
                }
                if let Some(d) = self.max_depth {
                    frames.truncate(d);
                }
                Some((frames, count))
            })
            .collect()
    }
}

/// The frame without its line suffix (`:123`, `:-1`), when it has one.
pub fn without_line(frame: &str) -> Option<&str> {
    let (name, line) = frame.rsplit_once(':')?;
    let digits = line.strip_prefix('-').unwrap_or(line);
    (!name.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// The package of a JVM frame: the name without its line, method and class
/// (`com.example.io.Reader.read:12` → `com.example.io`); a frame with fewer parts is its own
/// package.
pub fn package(frame: &str) -> &str {
    let name = without_line(frame).unwrap_or(frame);
    let class = name.rsplit_once('.').map_or(name, |(c, _)| c);
    class.rsplit_once('.').map_or(class, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stacks(list: &[(&[&str], u64)]) -> Stacks {
        list.iter().map(|(frames, c)| (frames.iter().map(|f| Arc::from(*f)).collect(), *c)).collect()
    }

    fn names(s: &Stacks) -> Vec<(String, u64)> {
        s.iter().map(|(f, c)| (f.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(";"), *c)).collect()
    }

    #[test]
    fn every_invalid_value_names_its_option() {
        for (name, value, start) in [
            ("width", "abc", "invalid width=\"abc\""),
            ("width", "50", "invalid width=\"50\""),
            ("minwidth", "101", "invalid minwidth=\"101\""),
            ("minwidth", "NaN", "invalid minwidth=\"NaN\""),
            ("inverted", "maybe", "invalid inverted=\"maybe\": use true or false"),
            ("reverse", "2", "invalid reverse=\"2\""),
            ("lines", "nope", "invalid lines=\"nope\""),
            ("colors", "rainbow", "invalid colors=\"rainbow\": one of java, hot"),
            ("hash", "class", "invalid hash=\"class\""),
            ("include", "(", "invalid include=\"(\": is not a regular expression"),
            ("exclude", "[a", "invalid exclude=\"[a\": is not a regular expression"),
            ("max_depth", "0", "invalid max_depth=\"0\""),
            ("max_depth", "-3", "invalid max_depth=\"-3\""),
        ] {
            let err = Options::default().take(name, value).expect_err(name);
            assert!(err.starts_with(start), "{name}={value}: {err}");
        }
        let huge = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(Options::default().take("include", &huge).expect_err("long").contains("at most 1024"));
        // A pattern that compiles to more than the limit is refused, not built.
        assert!(Options::default().take("include", r"\w{1000}\w{1000}").is_err());
    }

    #[test]
    fn valid_values_are_taken_and_others_left() {
        let mut o = Options::default();
        for (k, v) in [
            ("title", "t"),
            ("width", "800"),
            ("minwidth", "0.5%"),
            ("inverted", "true"),
            ("reverse", "1"),
            ("colors", "hot"),
            ("hash", "package"),
            ("include", "^java\\."),
            ("exclude", "Thread"),
            ("lines", "false"),
            ("max_depth", "3"),
        ] {
            assert_eq!(o.take(k, v), Ok(true), "{k}");
        }
        assert_eq!(o.take("executor", "1"), Ok(false));
        assert_eq!(o.style.width, Some(800));
        assert_eq!(o.style.min_width_bits.map(f64::from_bits), Some(0.5));
        assert_eq!(o.style.colors, Some("hot"));
        assert_eq!(o.style.hash, ColorHash::Package);
        assert!(o.style.inverted && o.shape.reverse && !o.shape.lines);
        assert_eq!(o.shape.max_depth, Some(3));
    }

    #[test]
    fn lines_off_merges_frames_that_differ_by_line() {
        assert_eq!(without_line("a.B.c:12"), Some("a.B.c"));
        assert_eq!(without_line("a.B$$Lambda$0/0x0.run:-1"), Some("a.B$$Lambda$0/0x0.run"));
        assert_eq!(without_line("a.B.c"), None);
        assert_eq!(without_line("http://x"), None);
        assert_eq!(without_line(":12"), None);
        let shape = Shape { lines: false, ..Shape::default() };
        let out = shape.apply(stacks(&[(&["T.run:1", "A.f:10"], 2), (&["T.run:1", "A.f:11"], 3)]));
        assert_eq!(names(&out), [("T.run;A.f".to_string(), 2), ("T.run;A.f".to_string(), 3)]);
        assert_eq!(crate::render::folded(&out), "T.run;A.f 5\n");
    }

    #[test]
    fn filters_reverse_and_depth() {
        let input = stacks(&[(&["main", "io.Read.read", "leaf"], 2), (&["main", "cpu.Work.run"], 3), (&["gc"], 1)]);
        let mut o = Options::default();
        o.take("include", "^io\\.").expect("include");
        assert_eq!(names(&o.shape.apply(input.clone())), [("main;io.Read.read;leaf".to_string(), 2)]);
        let mut o = Options::default();
        o.take("exclude", "Work|^gc$").expect("exclude");
        assert_eq!(names(&o.shape.apply(input.clone())), [("main;io.Read.read;leaf".to_string(), 2)]);
        let mut o = Options::default();
        o.take("reverse", "true").expect("reverse");
        o.take("max_depth", "2").expect("depth");
        assert_eq!(
            names(&o.shape.apply(input)),
            [("leaf;io.Read.read".to_string(), 2), ("cpu.Work.run;main".to_string(), 3), ("gc".to_string(), 1)]
        );
    }

    #[test]
    fn packages() {
        assert_eq!(package("com.example.io.Reader.read:12"), "com.example.io");
        assert_eq!(package("Workload$Parser.parse:26"), "Workload$Parser");
        assert_eq!(package("Workload.main:92"), "Workload");
        assert_eq!(package("[unknown]"), "[unknown]");
    }
}
