//! Flink's flame graph JSON (`GET /jobs/:jid/vertices/:vid/flamegraph`, and what users save from
//! its web UI): a tree of inclusive hit counts, turned back into stacks with their own counts
//! (self = value − Σ children), root first. The top node is the tree's root (Flink names it
//! `root`), never a frame.
//!
//! A document is checked whole before anything of it is used: malformed JSON, a value that is
//! negative, fractional or over [`MAX_SAMPLE_COUNT`], children that add up to more than their
//! parent, or a tree deeper than [`MAX_DEPTH`] frames is refused with an error naming where.
//!
//! Parsing recurses once per level, so it runs on a thread of its own with a stack sized for
//! [`MAX_DEPTH`] (checked first by a flat scan), never on a runtime thread.

use serde::Deserialize;
use serde_json::Number;

use crate::ingest::{truncated, MAX_SAMPLE_COUNT};

/// The deepest stack accepted, in frames. Flink samples at most `rest.flamegraph.stack-depth`
/// frames (100 by default); stackd's own JSON output of agent stacks can be deeper.
pub const MAX_DEPTH: usize = 16_384;

/// Stack of the parsing thread: enough for [`MAX_DEPTH`] levels of the recursive parser in an
/// unoptimised build (reserved, not touched, beyond what a document needs).
const PARSE_STACK: usize = 256 << 20;

/// Flink's answers that carry no tree (`{"endTimestamp":-1}` and so on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sentinel {
    /// −1: the vertex (or subtask) is no longer running.
    Finished,
    /// −2: flame graphs are disabled (`rest.flamegraph.enabled: false`).
    Disabled,
    /// −3: the first sample is being taken.
    Waiting,
}

/// A parsed document: a sentinel, or a tree with the time its sampling ended (when the document
/// says so).
#[derive(Debug)]
pub enum Document {
    Sentinel(Sentinel),
    Graph { end_ms: Option<i64>, tree: Tree },
}

/// A tree as stacks: each node's name and parent once, each stack the node it ends in (root
/// excluded) with its own count. Memory is linear in the nodes, however deep the tree.
#[derive(Debug, Default)]
pub struct Tree {
    names: Vec<String>,
    /// Each node's parent node, [`NO_NODE`] under the root.
    parents: Vec<u32>,
    /// The node each stack ends in ([`NO_NODE`]: the root's own samples, no frames).
    stacks: Vec<(u32, u64)>,
    /// The root's value: every sample of the tree.
    pub total: u64,
}

/// No node: the root, which is never a frame.
const NO_NODE: u32 = u32::MAX;

impl Tree {
    /// Stacks with a count above zero.
    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// Call `f` with each stack (frames root first) and its own count.
    pub fn each_stack(&self, mut f: impl FnMut(&[&str], u64)) {
        let mut frames: Vec<&str> = Vec::new();
        for &(mut node, count) in &self.stacks {
            frames.clear();
            while node != NO_NODE {
                frames.push(self.names[node as usize].as_str());
                node = self.parents[node as usize];
            }
            frames.reverse();
            f(&frames, count);
        }
    }
}

#[derive(Deserialize)]
struct RawNode {
    name: String,
    value: Number,
    #[serde(default)]
    children: Vec<RawNode>,
}

/// The whole response (`endTimestamp` and `data`) or just the tree (`name`, `value`,
/// `children`); other keys are ignored.
#[derive(Deserialize)]
struct RawDocument {
    #[serde(rename = "endTimestamp")]
    end_timestamp: Option<Number>,
    data: Option<RawNode>,
    name: Option<String>,
    value: Option<Number>,
    children: Option<Vec<RawNode>>,
}

/// Parse and check a document (see the module docs).
pub fn parse(body: &[u8]) -> Result<Document, String> {
    check_nesting(body)?;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("stackd-tree".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, || parse_here(body))
            .map_err(|e| format!("cannot start the parser: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the document could not be parsed".into()))
    })
}

fn parse_here(body: &[u8]) -> Result<Document, String> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("not a Flink flame graph: expected a JSON object".into());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    de.disable_recursion_limit();
    let raw = RawDocument::deserialize(&mut de).map_err(|e| format!("not a Flink flame graph: {e}"))?;
    de.end().map_err(|e| format!("not a Flink flame graph: {e}"))?;
    let end_ms = raw.end_timestamp.as_ref().map(|n| n.as_i64().ok_or_else(|| format!("endTimestamp {n} is not a whole number")));
    let end_ms = end_ms.transpose()?;
    let root = match (raw.data, raw.name, raw.value) {
        (Some(data), _, _) => data,
        (None, Some(name), Some(value)) => RawNode { name, value, children: raw.children.unwrap_or_default() },
        (None, _, _) => {
            return match end_ms {
                Some(-1) => Ok(Document::Sentinel(Sentinel::Finished)),
                Some(-2) => Ok(Document::Sentinel(Sentinel::Disabled)),
                Some(-3) => Ok(Document::Sentinel(Sentinel::Waiting)),
                Some(t) => Err(format!("endTimestamp {t} but no \"data\" tree")),
                None => Err("no tree: send Flink's response ({\"endTimestamp\":…,\"data\":{…}}) or its tree ({\"name\":\"root\",\"value\":…,\"children\":[…]})".into()),
            };
        }
    };
    if let Some(t) = end_ms.filter(|t| *t < 0) {
        return Err(format!("endTimestamp {t} with a tree"));
    }
    Ok(Document::Graph { end_ms, tree: flatten(root)? })
}

/// Refuse documents nested deeper than [`MAX_DEPTH`] frames allow, by a flat scan (strings
/// skipped), before the recursive parser sees them.
fn check_nesting(body: &[u8]) -> Result<(), String> {
    // Each frame is an object inside a `children` array; the response adds two levels.
    let max = 2 * MAX_DEPTH + 4;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(format!("the tree is deeper than {MAX_DEPTH} frames"));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A node's value as a sample count.
fn count(value: &Number) -> Result<u64, &'static str> {
    if let Some(v) = value.as_u64() {
        return if v > MAX_SAMPLE_COUNT { Err("over 10^12") } else { Ok(v) };
    }
    match value.as_f64() {
        Some(v) if v < 0.0 => Err("negative"),
        Some(v) if v.fract() != 0.0 => Err("not a whole number"),
        Some(v) if v > MAX_SAMPLE_COUNT as f64 => Err("over 10^12"),
        Some(v) => Ok(v as u64),
        None => Err("not a number"),
    }
}

/// Where a node is, for messages: the last frames of its path.
fn describe(names: &[String], path: &[u32]) -> String {
    if path.is_empty() {
        return "the root".into();
    }
    let shown: Vec<&str> = path.iter().rev().take(3).map(|&i| truncated(&names[i as usize], 120)).collect();
    let more = if path.len() > 3 { "…;" } else { "" };
    format!("frame {more}{}", shown.into_iter().rev().collect::<Vec<_>>().join(";"))
}

/// Check every node and turn the tree into stacks with their own counts (iteratively: trees
/// can be deep; each node's name moved, not copied).
fn flatten(root: RawNode) -> Result<Tree, String> {
    let mut tree =
        Tree { total: count(&root.value).map_err(|why| format!("the root's value {} is {why}", root.value))?, ..Tree::default() };
    let mut path: Vec<u32> = Vec::new();
    // (node, its depth in frames: 0 for the root)
    let mut todo: Vec<(RawNode, usize)> = vec![(root, 0)];
    while let Some((mut node, depth)) = todo.pop() {
        path.truncate(depth.saturating_sub(1));
        if depth > 0 {
            tree.parents.push(path.last().copied().unwrap_or(NO_NODE));
            tree.names.push(std::mem::take(&mut node.name));
            let id = u32::try_from(tree.names.len() - 1).ok().filter(|&i| i != NO_NODE).ok_or("the tree has too many nodes")?;
            path.push(id);
        }
        let value = count(&node.value).map_err(|why| format!("{}: value {} is {why}", describe(&tree.names, &path), node.value))?;
        let mut children = 0u64;
        // A child whose value is bad is refused when its turn comes, naming it.
        for child in &node.children {
            children = children.saturating_add(count(&child.value).unwrap_or(0));
        }
        if children > value {
            return Err(format!("{}: its children add up to {children}, more than its value {value}", describe(&tree.names, &path)));
        }
        if value > children {
            tree.stacks.push((path.last().copied().unwrap_or(NO_NODE), value - children));
        }
        todo.extend(std::mem::take(&mut node.children).into_iter().rev().map(|c| (c, depth + 1)));
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document's end time and its stacks as folded lines.
    type Folded = (Option<i64>, Vec<(String, u64)>);

    fn stacks(doc: &str) -> Result<Folded, String> {
        match parse(doc.as_bytes())? {
            Document::Sentinel(s) => Err(format!("{s:?}")),
            Document::Graph { end_ms, tree } => {
                let mut out = Vec::new();
                tree.each_stack(|frames, n| out.push((frames.join(";"), n)));
                Ok((end_ms, out))
            }
        }
    }

    #[test]
    fn self_counts_from_inclusive_values() {
        let doc = r#"{"endTimestamp":1795307259523,"data":{"name":"root","value":10,"children":[
            {"name":"java.lang.Thread.run:840","value":10,"children":[
              {"name":"A.a:1","value":6,"children":[{"name":"B.b:2","value":4}]},
              {"name":"C.c:3","value":3,"children":[]}]}]}}"#;
        let (end, s) = stacks(doc).expect("valid");
        assert_eq!(end, Some(1_795_307_259_523));
        assert_eq!(
            s,
            vec![
                ("java.lang.Thread.run:840".into(), 1),
                ("java.lang.Thread.run:840;A.a:1".into(), 2),
                ("java.lang.Thread.run:840;A.a:1;B.b:2".into(), 4),
                ("java.lang.Thread.run:840;C.c:3".into(), 3),
            ]
        );
        // Just the tree, as users copy it out of the browser.
        let (end, bare) = stacks(r#"{"name":"root","value":2,"children":[{"name":"x","value":2.0,"children":[]}]}"#).expect("valid");
        assert_eq!((end, bare), (None, vec![("x".into(), 2)]));
    }

    #[test]
    fn sentinels_and_empty_graphs() {
        for (doc, want) in [
            (r#"{"endTimestamp":-1}"#, Sentinel::Finished),
            (r#"{"endTimestamp":-2}"#, Sentinel::Disabled),
            (r#"{"endTimestamp":-3}"#, Sentinel::Waiting),
        ] {
            assert!(matches!(parse(doc.as_bytes()), Ok(Document::Sentinel(s)) if s == want), "{doc}");
        }
        // Flink's off-CPU graph of a thread that never waited.
        let (end, s) = stacks(r#"{"endTimestamp":1795307259523,"data":{"name":"root","value":0,"children":[]}}"#).expect("valid");
        assert_eq!((end, s), (Some(1_795_307_259_523), vec![]));
    }

    #[test]
    fn bad_documents_are_named() {
        let err = |doc: &str| stacks(doc).expect_err(doc);
        assert_eq!(
            err(r#"{"name":"root","value":5,"children":[{"name":"a","value":4},{"name":"b","value":3}]}"#),
            "the root: its children add up to 7, more than its value 5"
        );
        assert_eq!(
            err(r#"{"name":"root","value":5,"children":[{"name":"a","value":5,"children":[{"name":"b","value":-1}]}]}"#),
            "frame a;b: value -1 is negative"
        );
        assert_eq!(err(r#"{"name":"root","value":1.5}"#), "the root's value 1.5 is not a whole number");
        assert_eq!(err(r#"{"name":"root","value":1,"children":[{"name":"a","value":0.5}]}"#), "frame a: value 0.5 is not a whole number");
        assert!(err(r#"{"name":"root","value":1,"children":["#).starts_with("not a Flink flame graph: EOF"), "truncated");
        assert!(err(r#"{"name":"root","children":[]}"#).starts_with("no tree"), "no value");
        assert!(err(r#"{"name":"root","value":"3"}"#).starts_with("not a Flink flame graph: invalid type: string"), "string value");
        assert_eq!(err(r#"{"endTimestamp":5}"#), "endTimestamp 5 but no \"data\" tree");
        assert!(err(r#"{"name":"root","value":1} x"#).starts_with("not a Flink flame graph: trailing characters"), "trailing");
        assert_eq!(err(r#"{"name":"root","value":1e13}"#), "the root's value 10000000000000.0 is over 10^12");
    }

    #[test]
    fn deep_trees_parse_up_to_the_limit() {
        let deep = |frames: usize| {
            let mut doc = String::from(r#"{"endTimestamp":1,"data":{"name":"root","value":1,"children":["#);
            for i in 0..frames {
                doc.push_str(&format!(r#"{{"name":"f{i}","value":1,"children":["#));
            }
            doc.push_str(&"]}".repeat(frames));
            doc.push_str("]}}");
            doc
        };
        let (_, s) = stacks(&deep(MAX_DEPTH)).expect("at the limit");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0.split(';').count(), MAX_DEPTH);
        assert_eq!(stacks(&deep(MAX_DEPTH + 1)).expect_err("over"), format!("the tree is deeper than {MAX_DEPTH} frames"));
        // Brackets inside names do not count as nesting.
        let (_, s) = stacks(r#"{"name":"root","value":1,"children":[{"name":"[[[{{{\"","value":1}]}"#).expect("valid");
        assert_eq!(s, vec![("[[[{{{\"".into(), 1)]);
    }
}
