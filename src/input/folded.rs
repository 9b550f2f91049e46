//! Collapsed stacks (`frame;frame;frame count`, root first, one stack per line): what
//! async-profiler's `collapsed` output, `perf script | stackcollapse-perf.pl`, flamegraph.pl and
//! stackd's own `.folded` output hold.
//!
//! A document is checked whole before anything of it is used: a line without a whole count at
//! its end, or with a count over [`MAX_SAMPLE_COUNT`], refuses the document, naming the line.
//! Blank lines are skipped; a line break may be `\r\n`. Identical stacks on several lines add
//! up.

use crate::ingest::{truncated, MAX_SAMPLE_COUNT};

/// The stacks of a collapsed document (frames root first, borrowed) with their counts.
pub fn parse(text: &str) -> Result<Vec<(Vec<&str>, u64)>, String> {
    let mut stacks = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why} (want `frame;frame;frame count`): {:?}", i + 1, truncated(line, 200));
        let (stack, count) = line.rsplit_once(' ').ok_or_else(|| bad("no count"))?;
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the count is not a whole number"));
        }
        let count: u64 = count.parse().ok().filter(|c| *c <= MAX_SAMPLE_COUNT).ok_or_else(|| bad("the count is over 10^12"))?;
        let frames = if stack.is_empty() { Vec::new() } else { stack.split(';').collect() };
        stacks.push((frames, count));
    }
    Ok(stacks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_stacks() {
        let text = "java.lang.Thread.run:840;A.a:1 3\r\n\njava.lang.Thread.run:840;A.a:1;B b:2 4\n 2\n";
        assert_eq!(
            parse(text).expect("valid"),
            vec![(vec!["java.lang.Thread.run:840", "A.a:1"], 3), (vec!["java.lang.Thread.run:840", "A.a:1", "B b:2"], 4), (vec![], 2),]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(parse("a;b 1\nc;d\n").expect_err("no count"), "line 2: no count (want `frame;frame;frame count`): \"c;d\"");
        assert_eq!(
            parse("a;b 1.5").expect_err("fraction"),
            "line 1: the count is not a whole number (want `frame;frame;frame count`): \"a;b 1.5\""
        );
        assert_eq!(
            parse("a -3").expect_err("negative"),
            "line 1: the count is not a whole number (want `frame;frame;frame count`): \"a -3\""
        );
        assert_eq!(
            parse("a 1000000000001").expect_err("large"),
            "line 1: the count is over 10^12 (want `frame;frame;frame count`): \"a 1000000000001\""
        );
        assert_eq!(
            parse("a 3 ").expect_err("trailing space"),
            "line 1: the count is not a whole number (want `frame;frame;frame count`): \"a 3 \""
        );
    }
}
