//! async-profiler 2.x HTML flame graphs (what Flink's built-in profiler serves, and what
//! `file=x.html` writes): one `f(level,left,width,type,'title'[,inln,c1,int])` call per frame,
//! in depth-first order. A frame's parent is the frame one level up whose `[left, left+width)`
//! contains it; its own samples are its width less its children's. Level 0 is the root (`all`),
//! which stackd leaves out (it has its own).
//!
//! A frame keeps async-profiler's kind as its annotated collapsed output (`collapsed,ann`)
//! writes it: `_[j]` compiled Java, `_[i]` inlined, `_[1]` C1-compiled, `_[0]` interpreted,
//! `_[k]` kernel; native and C++ frames bare. Java names read with dots (`java.lang.Thread.run`),
//! as stackd's other inputs have them. Every call is checked (levels one deeper at most, each
//! frame inside its parent and after its left sibling) before anything is stored.

use std::fmt;

/// Most frames one document may have.
pub const MAX_FRAMES: usize = 1_000_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// Line (1-based) and what is wrong.
    Bad(usize, String),
    /// No `f(` call at all.
    Empty,
    /// async-profiler 3 and later write a compressed form.
    Compressed,
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bad(line, what) => write!(f, "line {line}: {what}"),
            Error::Empty => write!(f, "no flame graph frames (lines f(level,left,width,type,'name')): an async-profiler 2.x HTML flame graph was expected"),
            Error::Compressed => write!(
                f,
                "an async-profiler 3 or later HTML flame graph (compressed form) is not read: upload its JFR (/import/jfr) or collapsed output (/import/folded) instead"
            ),
            Error::TooLarge => write!(f, "more than {MAX_FRAMES} frames"),
        }
    }
}

impl std::error::Error for Error {}

/// The frames of one document, in depth-first order.
#[derive(Debug, Default)]
pub struct Graph {
    names: Vec<String>,
    levels: Vec<u32>,
    selves: Vec<u64>,
    /// The root's width: every sample.
    pub total: u64,
}

impl Graph {
    /// Frames, the root included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Each stack (root first, the root left out) with its own samples.
    pub fn each_stack(&self, sink: &mut dyn FnMut(&[&str], u64)) {
        let mut path: Vec<&str> = Vec::new();
        for ((name, &level), &own) in self.names.iter().zip(&self.levels).zip(&self.selves) {
            if level == 0 {
                continue;
            }
            path.truncate(level as usize - 1);
            path.push(name);
            if own > 0 {
                sink(&path, own);
            }
        }
    }

    /// Stacks with samples.
    pub fn stacks(&self) -> usize {
        self.selves.iter().enumerate().filter(|(i, s)| **s > 0 && self.levels[*i] > 0).count()
    }
}

/// A frame being read: its place, its span, where its last child ends and what its children
/// cover.
struct Open {
    index: usize,
    left: u64,
    width: u64,
    end: u64,
    covered: u64,
}

/// Read and check a document.
pub fn parse(text: &str) -> Result<Graph, Error> {
    let mut g = Graph::default();
    let mut open: Vec<Open> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let Some(args) = line.strip_prefix("f(") else {
            if line.starts_with("const cpool") {
                return Err(Error::Compressed);
            }
            continue;
        };
        let bad = |what: String| Error::Bad(n + 1, what);
        if g.names.len() >= MAX_FRAMES {
            return Err(Error::TooLarge);
        }
        let (level, left, width, kind, title) = call(args).map_err(|e| bad(format!("{e}: {}", shorten(line))))?;
        let level = usize::try_from(level).unwrap_or(usize::MAX);
        if level == 0 {
            if !g.names.is_empty() {
                return Err(bad("a second root (level 0)".into()));
            }
            g.total = width;
        } else {
            if g.names.is_empty() {
                return Err(bad("a frame before the root (level 0)".into()));
            }
            if level > open.len() {
                return Err(bad(format!("level {level} right after level {}: a level was skipped", open.len() - 1)));
            }
            while open.len() > level {
                close(&mut g, &mut open);
            }
            let parent = open.last_mut().expect("the root is open");
            let end = left.checked_add(width).ok_or_else(|| bad("left + width overflows".into()))?;
            if left < parent.end || end > parent.left.saturating_add(parent.width) {
                return Err(bad(format!(
                    "frame [{left}, {end}) is not inside its parent [{}, {}) after its left sibling",
                    parent.left,
                    parent.left.saturating_add(parent.width)
                )));
            }
            parent.end = end;
            parent.covered = parent.covered.saturating_add(width);
        }
        open.push(Open { index: g.names.len(), left, width, end: left, covered: 0 });
        g.names.push(name(&title, kind));
        g.levels.push(level as u32);
        g.selves.push(0);
    }
    while !open.is_empty() {
        close(&mut g, &mut open);
    }
    if g.names.is_empty() {
        return Err(Error::Empty);
    }
    Ok(g)
}

/// A frame's own samples: its width less its children's (gaps between them are its own too).
fn close(g: &mut Graph, open: &mut Vec<Open>) {
    let f = open.pop().expect("an open frame");
    g.selves[f.index] = f.width.saturating_sub(f.covered);
}

/// The arguments of one call: level, left, width, type, title.
fn call(args: &str) -> Result<(u64, u64, u64, u8, String), String> {
    let mut rest = args;
    let mut numbers = [0u64; 4];
    for (i, v) in numbers.iter_mut().enumerate() {
        let comma = rest.find(',').ok_or("fewer than five arguments")?;
        *v = rest[..comma].trim().parse().map_err(|_| format!("argument {} is not a whole number", i + 1))?;
        rest = &rest[comma + 1..];
    }
    let kind = u8::try_from(numbers[3]).map_err(|_| "the frame type is out of range".to_string())?;
    let rest = rest.trim_start();
    let quoted = rest.strip_prefix('\'').ok_or("the name is not a quoted string")?;
    let mut title = String::new();
    let mut chars = quoted.chars();
    loop {
        match chars.next().ok_or("the name's quote is not closed")? {
            '\'' => break,
            '\\' => match chars.next().ok_or("the name ends in a backslash")? {
                'n' => title.push('\n'),
                't' => title.push('\t'),
                'r' => title.push('\r'),
                'x' => title.push(hex(&mut chars, 2)?),
                'u' => title.push(hex(&mut chars, 4)?),
                c => title.push(c),
            },
            c => title.push(c),
        }
    }
    let after = chars.as_str().trim_start();
    if !(after.starts_with(',') || after.starts_with(')')) {
        return Err("text after the name".into());
    }
    Ok((numbers[0], numbers[1], numbers[2], kind, title))
}

fn hex(chars: &mut std::str::Chars<'_>, n: usize) -> Result<char, String> {
    let digits: String = chars.take(n).collect();
    u32::from_str_radix(&digits, 16)
        .ok()
        .filter(|_| digits.len() == n)
        .and_then(char::from_u32)
        .ok_or_else(|| format!("a bad escape \\{digits}"))
}

/// A frame's name with its kind: async-profiler 2.x's frame types (interpreted, compiled,
/// inlined, native, C++, kernel, C1-compiled).
fn name(title: &str, kind: u8) -> String {
    let suffix = match kind {
        0 => "_[0]",
        1 => "_[j]",
        2 => "_[i]",
        5 => "_[k]",
        6 => "_[1]",
        _ => "",
    };
    let java = matches!(kind, 0 | 1 | 2 | 6);
    let mut out = if java { title.replace('/', ".") } else { title.to_string() };
    out.push_str(suffix);
    out
}

fn shorten(line: &str) -> String {
    let mut s: String = line.chars().take(120).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stacks(g: &Graph) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        g.each_stack(&mut |s, n| out.push((s.join(";"), n)));
        out
    }

    #[test]
    fn frames_become_stacks_with_their_kinds() {
        let html = "<script>\nf(0,0,10,3,'all')\nf(1,0,7,1,'java/lang/Thread.run')\nf(2,0,4,2,'Main.work',0,0,1)\n\
f(3,0,1,5,'do_syscall_64')\nf(2,5,2,0,'Main.idle')\nf(1,7,3,4,'JavaThread::run()')\nf(2,7,1,6,'It\\'s.c1')\n</script>";
        let g = parse(html).expect("parses");
        assert_eq!((g.total, g.len(), g.stacks()), (10, 7, 6));
        assert_eq!(
            stacks(&g),
            [
                ("java.lang.Thread.run_[j]".to_string(), 1),
                ("java.lang.Thread.run_[j];Main.work_[i]".to_string(), 3),
                ("java.lang.Thread.run_[j];Main.work_[i];do_syscall_64_[k]".to_string(), 1),
                ("java.lang.Thread.run_[j];Main.idle_[0]".to_string(), 2),
                ("JavaThread::run()".to_string(), 2),
                ("JavaThread::run();It's.c1_[1]".to_string(), 1),
            ]
        );
    }

    #[test]
    fn malformed_documents_are_refused_with_the_line() {
        let bad = |html: &str| parse(html).expect_err("refused").to_string();
        assert_eq!(bad("<html></html>"), Error::Empty.to_string());
        assert!(bad("const cpool = [\n'all'];").contains("async-profiler 3"));
        assert_eq!(
            bad("f(0,0,10,3,'all')\nf(1,0,11,1,'x')"),
            "line 2: frame [0, 11) is not inside its parent [0, 10) after its left sibling"
        );
        assert_eq!(
            bad("f(0,0,10,3,'all')\nf(1,0,5,1,'x')\nf(1,4,5,1,'y')"),
            "line 3: frame [4, 9) is not inside its parent [0, 10) after its left sibling"
        );
        assert_eq!(bad("f(0,0,10,3,'all')\nf(2,0,5,1,'x')"), "line 2: level 2 right after level 0: a level was skipped");
        assert_eq!(bad("f(1,0,10,3,'x')"), "line 1: a frame before the root (level 0)");
        assert_eq!(bad("f(0,0,10,3,'all')\nf(0,0,10,3,'all')"), "line 2: a second root (level 0)");
        assert!(bad("f(0,0,10,3,'all')\nf(1,0,x,1,'a')").starts_with("line 2: argument 3 is not a whole number"));
        assert!(bad("f(0,0,10,3,'all')\nf(1,0,1,1,'a)").starts_with("line 2: the name's quote is not closed"));
        assert!(bad("f(0,0,10,3,'all')\nf(1,0,1,999,'a')").starts_with("line 2: the frame type is out of range"));
        assert!(bad("f(0,0,10,3,'all')\nf(1,18446744073709551615,1,1,'a')").starts_with("line 2: left + width overflows"));
    }
}
