//! async-profiler 2.x HTML flame graphs read here on their own, to check what stackd stores
//! from them against an independent reading.

use std::collections::BTreeMap;

/// A stack as async-profiler's outputs and stackd's can be compared: each frame's kind suffix
/// (`_[j]`, which the HTML gives but the plain collapsed text does not) taken off, and `/` read
/// as `.` (stackd writes Java names with dots, async-profiler with slashes).
pub fn comparable(stack: &str) -> String {
    stack
        .split(';')
        .map(|f| {
            let f = match f.len().checked_sub(4).map(|i| f.split_at(i)) {
                Some((name, kind)) if ["_[j]", "_[i]", "_[0]", "_[1]", "_[k]"].contains(&kind) => name,
                _ => f,
            };
            f.replace('/', ".")
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Stacks added up (the same stack may come twice).
pub fn merged(stacks: impl IntoIterator<Item = (String, u64)>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (s, n) in stacks {
        *out.entry(s).or_insert(0) += n;
    }
    out
}

/// The root's width, read from the `f(0,0,<width>,` call.
pub fn root_width(html: &str) -> u64 {
    let line = html.lines().find(|l| l.starts_with("f(0,0,")).expect("a root frame");
    line["f(0,0,".len()..].split(',').next().expect("width").parse().expect("a number")
}

/// The stacks of a graph (root left out, names [`comparable`]), each with its own samples:
/// a frame's width less its children's. Frames come depth first, one `f(level,left,width,
/// type,'title'…)` call a line.
pub fn stacks(html: &str) -> BTreeMap<String, u64> {
    // (name, width, width of the children seen)
    let mut path: Vec<(String, u64, u64)> = Vec::new();
    let mut out = Vec::new();
    fn close(path: &mut Vec<(String, u64, u64)>, out: &mut Vec<(String, u64)>) {
        let own = path.last().map(|(_, width, children)| width.saturating_sub(*children)).unwrap_or(0);
        if own > 0 && path.len() > 1 {
            let names: Vec<&str> = path.iter().skip(1).map(|(n, ..)| n.as_str()).collect();
            out.push((names.join(";"), own));
        }
        path.pop();
    }
    for line in html.lines().filter(|l| l.starts_with("f(")) {
        let mut numbers = line[2..].splitn(5, ',');
        let level: usize = numbers.next().and_then(|n| n.parse().ok()).expect("level");
        let _left = numbers.next();
        let width: u64 = numbers.next().and_then(|n| n.parse().ok()).expect("width");
        let (open, end) = (line.find('\'').expect("a title"), line.rfind('\'').expect("a title"));
        let title = line[open + 1..end].replace("\\'", "'").replace("\\\\", "\\").replace('/', ".");
        // A frame's children end where the next frame of its level or above starts.
        while path.len() > level {
            close(&mut path, &mut out);
        }
        if let Some(parent) = path.last_mut() {
            parent.2 += width;
        }
        path.push((title, width, 0));
    }
    while !path.is_empty() {
        close(&mut path, &mut out);
    }
    merged(out.into_iter().map(|(s, n)| (comparable(&s), n)))
}
