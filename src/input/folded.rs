//! Collapsed stacks (`frame;frame;frame count`, root first, one stack per line): what
//! async-profiler's `collapsed` output, `perf script | stackcollapse-perf.pl`, flamegraph.pl and
//! stackd's own `.folded` output hold.
//!
//! A document is checked whole before anything of it is used: a line without a whole count at
//! its end, with a count over [`MAX_SAMPLE_COUNT`], with an empty frame (`a;;b 1`, `;;; 5`), or
//! whose last frame ends in a number (`a;b 1 2`: two counts, or a count cut off) refuses the
//! document, naming the line. Blank lines are skipped; a line break may be `\r\n`. Identical
//! stacks on several lines add up. A line of only a count (` 5`) is samples with no frames.
//!
//! [`check`] then [`each`] read a document twice without copying it: an import costs its body
//! and one stack's frames.

use crate::ingest::{truncated, MAX_SAMPLE_COUNT};

/// Each non-blank line with its number (from 1), its `\r` cut.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').enumerate().map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l))).filter(|(_, l)| !l.trim().is_empty())
}

/// One line's stack (frames joined by `;`) and count, checked.
fn line(n: usize, line: &str) -> Result<(&str, u64), String> {
    let bad = |why: &str| format!("line {n}: {why} (want `frame;frame;frame count`): {:?}", truncated(line, 200));
    let (stack, count) = line.rsplit_once(' ').ok_or_else(|| bad("no count"))?;
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the count is not a whole number"));
    }
    let count: u64 = count.parse().ok().filter(|c| *c <= MAX_SAMPLE_COUNT).ok_or_else(|| bad("the count is over 10^12"))?;
    if !stack.is_empty() {
        if stack.split(';').any(str::is_empty) {
            return Err(bad("an empty frame"));
        }
        let last = stack.rsplit(';').next().unwrap_or(stack);
        if last.rsplit_once(' ').is_some_and(|(_, tail)| !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())) {
            return Err(bad("the last frame ends in a number: two counts?"));
        }
    }
    Ok((stack, count))
}

/// Check a whole document; the number of its stacks (lines).
pub fn check(text: &str) -> Result<usize, String> {
    let mut stacks = 0;
    for (n, l) in lines(text) {
        line(n, l)?;
        stacks += 1;
    }
    Ok(stacks)
}

/// Call `f` with each stack of a [`check`]ed document (frames root first) and its count.
pub fn each(text: &str, f: &mut dyn FnMut(&[&str], u64)) {
    let mut frames: Vec<&str> = Vec::new();
    for (n, l) in lines(text) {
        let Ok((stack, count)) = line(n, l) else { continue };
        frames.clear();
        if !stack.is_empty() {
            frames.extend(stack.split(';'));
        }
        f(&frames, count);
    }
}

/// The stacks of a collapsed document (frames root first, borrowed) with their counts.
pub fn parse(text: &str) -> Result<Vec<(Vec<&str>, u64)>, String> {
    let mut stacks = Vec::with_capacity(check(text)?);
    for (n, l) in lines(text) {
        let (stack, count) = line(n, l)?;
        stacks.push((if stack.is_empty() { Vec::new() } else { stack.split(';').collect() }, count));
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
        assert_eq!(
            parse("x 1\na;b 1 2").expect_err("two counts"),
            "line 2: the last frame ends in a number: two counts? (want `frame;frame;frame count`): \"a;b 1 2\""
        );
        assert_eq!(parse(";;; 5").expect_err("empty frames"), "line 1: an empty frame (want `frame;frame;frame count`): \";;; 5\"");
        assert_eq!(parse("a;;b 5").expect_err("empty frame"), "line 1: an empty frame (want `frame;frame;frame count`): \"a;;b 5\"");
        // A frame with a space in it, or ending in a line number, is a frame.
        assert_eq!(parse("A a 1;B b:2 3").expect("valid"), vec![(vec!["A a 1", "B b:2"], 3)]);
    }

    #[test]
    fn each_reads_what_check_passed() {
        let text = "a;b 3\r\n\n 2\na;b 1\n";
        assert_eq!(check(text), Ok(3));
        let mut seen = Vec::new();
        each(text, &mut |frames, n| seen.push((frames.join(";"), n)));
        assert_eq!(seen, [("a;b".to_string(), 3), (String::new(), 2), ("a;b".to_string(), 1)]);
    }
}
