//! The explorer's format (`/flamegraph/<app>.tree`): the merged call tree as levels of
//! `[start, total, self, name, parent]` (a name is an index into one table of names, a parent
//! the place of the node's parent in the level above), every function's
//! self and total (the top-functions table), and for `focus=<function>` the function's callers
//! and callees as two more trees (the sandwich view). With a baseline each node and function
//! carries the baseline's total and self too, as stored (the page scales them).
//!
//! Levels: level 0 is the root (`all`); a node's children are on the next level, sorted by
//! name, laid side by side from the node's start, each as wide as its total (the current
//! selection's). The tree is cut to [`MAX_NODES`] by leaving out the narrowest nodes (a node's
//! total is never above its parent's, so what is left stays a tree); a parent's `self` is its
//! own and never includes what was left out. Functions are exact, whatever was cut.
//!
//! A function's total counts each stack once, however often the function recurs in it; the
//! sandwich takes each stack at the function's outermost call, so both of its roots have the
//! function's total.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::Stacks;

/// Most nodes of one tree sent to the browser (about 1.5 MB of JSON).
pub const MAX_NODES: usize = 50_000;

/// Most rows of the functions table: the heaviest by self time.
pub const MAX_FUNCTIONS: usize = 20_000;

/// Interned frame names, shared by the trees and the functions of one answer.
#[derive(Default)]
pub(super) struct Names {
    pub(super) list: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Names {
    pub(super) fn id(&mut self, name: &Arc<str>) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(Arc::clone(name));
        self.ids.insert(Arc::clone(name), id);
        id
    }
}

pub(super) struct Node {
    pub(super) name: u32,
    /// [current, baseline]
    pub(super) total: [u64; 2],
    pub(super) children: Vec<u32>,
}

/// A call tree being merged (also the d3 JSON's, [`super::json`]); node 0 is the root. Nodes
/// are in an arena, so neither building nor walking nor dropping it recurses (stacks can be
/// tens of thousands of frames deep).
pub(super) struct Tree {
    pub(super) nodes: Vec<Node>,
    index: HashMap<(u32, u32), u32>,
}

impl Tree {
    pub(super) fn new(root: u32) -> Tree {
        Tree { nodes: vec![Node { name: root, total: [0, 0], children: Vec::new() }], index: HashMap::new() }
    }

    pub(super) fn add(&mut self, frames: impl Iterator<Item = u32>, count: u64, column: usize) {
        self.nodes[0].total[column] = self.nodes[0].total[column].saturating_add(count);
        let mut at = 0u32;
        for name in frames {
            let next = match self.index.get(&(at, name)) {
                Some(&n) => n,
                None => {
                    let n = self.nodes.len() as u32;
                    self.nodes.push(Node { name, total: [0, 0], children: Vec::new() });
                    self.nodes[at as usize].children.push(n);
                    self.index.insert((at, name), n);
                    n
                }
            };
            let node = &mut self.nodes[next as usize];
            node.total[column] = node.total[column].saturating_add(count);
            at = next;
        }
    }

    /// Every node's children sorted by name (the same data gives the same output).
    pub(super) fn sort_children(&mut self, names: &Names) {
        for i in 0..self.nodes.len() {
            let mut children = std::mem::take(&mut self.nodes[i].children);
            let name = |n: &u32| &names.list[self.nodes[*n as usize].name as usize];
            children.sort_unstable_by(|a, b| name(a).cmp(name(b)));
            self.nodes[i].children = children;
        }
    }

    /// The levels, cut to `max_nodes`; and how many nodes the whole tree has.
    fn levels(mut self, names: &Names, diff: bool, max_nodes: usize) -> Levels {
        // Scale the baseline to the current total, for deciding what is narrow.
        let (now, base) = (self.nodes[0].total[0], self.nodes[0].total[1]);
        let weight = |n: &Node| -> u64 {
            if !diff || base == 0 {
                return n.total[0];
            }
            let scaled = (u128::from(n.total[1]) * u128::from(now) / u128::from(base)) as u64;
            n.total[0].max(scaled)
        };
        let count = self.nodes.len();
        // The smallest weight kept: the max_nodes-th largest (ties beyond the budget go too).
        let min_weight = if count > max_nodes {
            let mut weights: Vec<u64> = self.nodes.iter().map(weight).collect();
            let (_, &mut nth, _) = weights.select_nth_unstable_by(max_nodes.max(1) - 1, |a, b| b.cmp(a));
            let kept = weights.iter().filter(|&&w| w >= nth).count();
            if kept > max_nodes {
                nth.saturating_add(1)
            } else {
                nth.max(1)
            }
        } else {
            0
        };
        self.sort_children(names);
        let nodes = std::mem::take(&mut self.nodes);
        let mut levels: Vec<Vec<u64>> = Vec::new();
        let mut shown = 0usize;
        // Breadth first: (node, start, its parent's place in the level above) of one level,
        // then the next.
        let mut this: Vec<(u32, u64, u64)> = vec![(0, 0, 0)];
        while !this.is_empty() {
            let mut level = Vec::with_capacity(this.len() * if diff { 7 } else { 5 });
            let mut next = Vec::new();
            for (place, (id, start, parent)) in this.into_iter().enumerate() {
                let n = &nodes[id as usize];
                let mut at = start;
                let mut children_total = [0u64; 2];
                for &c in &n.children {
                    let child = &nodes[c as usize];
                    children_total[0] = children_total[0].saturating_add(child.total[0]);
                    children_total[1] = children_total[1].saturating_add(child.total[1]);
                    if weight(child) >= min_weight {
                        next.push((c, at, place as u64));
                    }
                    at = at.saturating_add(child.total[0]);
                }
                level.extend([start, n.total[0], n.total[0].saturating_sub(children_total[0]), u64::from(n.name), parent]);
                if diff {
                    level.extend([n.total[1], n.total[1].saturating_sub(children_total[1])]);
                }
                shown += 1;
            }
            levels.push(level);
            this = next;
        }
        Levels { levels, nodes: count, shown }
    }
}

/// A tree as the page draws it.
#[derive(Debug, Serialize)]
pub struct Levels {
    /// Per level, `[start, total, self, name, parent]` per node (and `base_total, base_self` in
    /// a diff); `parent` is the place of the node's parent in the level above.
    pub levels: Vec<Vec<u64>>,
    /// Nodes of the whole tree.
    pub nodes: usize,
    /// Nodes in `levels`.
    pub shown: usize,
}

/// A function's self and total: `[name, self, total]` (and `base_self, base_total` in a diff).
pub type FunctionRow = Vec<u64>;

#[derive(Debug, Serialize)]
pub struct Sandwich {
    pub name: u32,
    pub callers: Levels,
    pub callees: Levels,
}

/// One answer of the `.tree` format.
#[derive(Debug, Serialize)]
pub struct Answer {
    pub names: Vec<Arc<str>>,
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_total: Option<u64>,
    pub tree: Levels,
    /// Heaviest self first.
    pub functions: Vec<FunctionRow>,
    /// Functions in the selection (`functions` holds at most [`MAX_FUNCTIONS`]).
    pub functions_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focus: Option<Sandwich>,
}

/// The name of the root of every tree.
pub const ROOT: &str = "all";

/// Build the answer for `current` (and `base`, a diff), with the sandwich of `focus`.
pub fn answer(current: &Stacks, base: Option<&Stacks>, focus: Option<&str>, max_nodes: usize) -> Answer {
    let diff = base.is_some();
    let mut names = Names::default();
    let root = names.id(&Arc::from(ROOT));
    let mut tree = Tree::new(root);
    // Per function: [self, total, base self, base total], and the last stack that counted it.
    let mut functions: Vec<[u64; 4]> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    let mut stack_no = 0usize;
    let focus_name: Option<Arc<str>> = focus.map(Arc::from);
    let focus_id = focus_name.as_ref().map(|f| names.id(f));
    let mut callers = focus_id.map(Tree::new);
    let mut callees = focus_id.map(Tree::new);
    let mut ids: Vec<u32> = Vec::new();
    for (column, stacks) in [(0usize, Some(current)), (1, base)] {
        let Some(stacks) = stacks else { continue };
        for (frames, count) in stacks {
            ids.clear();
            ids.extend(frames.iter().map(|f| names.id(f)));
            tree.add(ids.iter().copied(), *count, column);
            stack_no += 1;
            if functions.len() < names.list.len() {
                functions.resize(names.list.len(), [0; 4]);
                seen.resize(names.list.len(), usize::MAX);
            }
            for &id in &ids {
                let i = id as usize;
                if seen[i] != stack_no {
                    seen[i] = stack_no;
                    functions[i][1 + 2 * column] = functions[i][1 + 2 * column].saturating_add(*count);
                }
            }
            if let Some(&leaf) = ids.last() {
                functions[leaf as usize][2 * column] = functions[leaf as usize][2 * column].saturating_add(*count);
            }
            if let (Some(f), Some(callers), Some(callees)) = (focus_id, callers.as_mut(), callees.as_mut()) {
                if let Some(at) = ids.iter().position(|&id| id == f) {
                    callers.add(ids[..at].iter().rev().copied(), *count, column);
                    callees.add(ids[at + 1..].iter().copied(), *count, column);
                }
            }
        }
    }
    let total = tree.nodes[0].total[0];
    let base_total = diff.then_some(tree.nodes[0].total[1]);
    let mut rows: Vec<(u32, [u64; 4])> =
        functions.iter().enumerate().filter(|(_, f)| f[1] > 0 || f[3] > 0).map(|(i, f)| (i as u32, *f)).collect();
    let functions_count = rows.len();
    rows.sort_unstable_by(|a, b| {
        b.1[0].cmp(&a.1[0]).then(b.1[1].cmp(&a.1[1])).then_with(|| names.list[a.0 as usize].cmp(&names.list[b.0 as usize]))
    });
    rows.truncate(MAX_FUNCTIONS);
    let functions = rows
        .into_iter()
        .map(|(id, f)| {
            let mut row = vec![u64::from(id), f[0], f[1]];
            if diff {
                row.extend([f[2], f[3]]);
            }
            row
        })
        .collect();
    let levels = tree.levels(&names, diff, max_nodes);
    let focus = match (focus_id, callers, callees) {
        (Some(name), Some(callers), Some(callees)) => {
            Some(Sandwich { name, callers: callers.levels(&names, diff, max_nodes), callees: callees.levels(&names, diff, max_nodes) })
        }
        _ => None,
    };
    Answer { names: names.list, total, base_total, tree: levels, functions, functions_count, focus }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stacks(list: &[(&[&str], u64)]) -> Stacks {
        list.iter().map(|(frames, c)| (frames.iter().map(|f| Arc::from(*f)).collect(), *c)).collect()
    }

    fn name_of(a: &Answer, id: u64) -> &str {
        &a.names[id as usize]
    }

    #[test]
    fn levels_lay_children_side_by_side_sorted_by_name() {
        let s = stacks(&[(&["main", "b"], 3), (&["main", "a", "x"], 2), (&["main"], 1), (&["other"], 4)]);
        let a = answer(&s, None, None, MAX_NODES);
        assert_eq!(a.total, 10);
        type Row = (String, u64, u64, u64, u64);
        let levels: Vec<Vec<Row>> =
            a.tree.levels.iter().map(|l| l.chunks(5).map(|n| (name_of(&a, n[3]).to_string(), n[0], n[1], n[2], n[4])).collect()).collect();
        assert_eq!(
            levels,
            vec![
                vec![("all".to_string(), 0, 10, 0, 0)],
                vec![("main".to_string(), 0, 6, 1, 0), ("other".to_string(), 6, 4, 4, 0)],
                vec![("a".to_string(), 0, 2, 0, 0), ("b".to_string(), 2, 3, 3, 0)],
                vec![("x".to_string(), 0, 2, 2, 0)],
            ]
        );
        assert_eq!((a.tree.nodes, a.tree.shown), (6, 6));
    }

    #[test]
    fn functions_count_a_recursive_function_once_per_stack() {
        let s = stacks(&[(&["main", "f", "g", "f"], 5), (&["main", "g"], 2), (&["main"], 1)]);
        let a = answer(&s, None, None, MAX_NODES);
        let rows: Vec<(String, u64, u64)> = a.functions.iter().map(|r| (name_of(&a, r[0]).to_string(), r[1], r[2])).collect();
        assert_eq!(rows, vec![("f".to_string(), 5, 5), ("g".to_string(), 2, 7), ("main".to_string(), 1, 8)]);
        assert_eq!(a.functions_count, 3);
    }

    #[test]
    fn sandwich_takes_the_outermost_call() {
        let s = stacks(&[(&["main", "f", "g", "f", "h"], 5), (&["main", "x", "f"], 2), (&["main", "g"], 4)]);
        let a = answer(&s, None, Some("f"), MAX_NODES);
        let focus = a.focus.as_ref().expect("focus");
        assert_eq!(name_of(&a, u64::from(focus.name)), "f");
        let level =
            |l: &Levels, i: usize| -> Vec<(String, u64)> { l.levels[i].chunks(5).map(|n| (name_of(&a, n[3]).to_string(), n[1])).collect() };
        assert_eq!(level(&focus.callers, 0), [("f".to_string(), 7)]);
        assert_eq!(level(&focus.callers, 1), [("main".to_string(), 5), ("x".to_string(), 2)]);
        assert_eq!(level(&focus.callees, 0), [("f".to_string(), 7)]);
        assert_eq!(level(&focus.callees, 1), [("g".to_string(), 5)]);
        assert_eq!(level(&focus.callees, 3), [("h".to_string(), 5)]);
    }

    #[test]
    fn a_diff_carries_the_baseline_and_the_cut_keeps_the_widest() {
        let s = stacks(&[(&["main", "a"], 90), (&["main", "b"], 10)]);
        let b = stacks(&[(&["main", "a"], 10), (&["main", "c"], 40)]);
        let a = answer(&s, Some(&b), None, MAX_NODES);
        assert_eq!((a.total, a.base_total), (100, Some(50)));
        let main = &a.tree.levels[1];
        assert_eq!(main, &vec![0, 100, 0, 1, 0, 50, 0]);
        // c has no current samples: zero wide, drawn nowhere, but its baseline is there.
        let c = a.tree.levels[2].chunks(7).find(|n| name_of(&a, n[3]) == "c").expect("c");
        assert_eq!(c, [100, 0, 0, c[3], 0, 40, 40]);
        let rows: Vec<(String, Vec<u64>)> = a.functions.iter().map(|r| (name_of(&a, r[0]).to_string(), r[1..].to_vec())).collect();
        assert_eq!(rows[0], ("a".to_string(), vec![90, 90, 10, 10]));
        assert!(rows.contains(&("c".to_string(), vec![0, 0, 40, 40])));
        // Cut to three nodes: all, main and a (the widest), b and c left out.
        let cut = answer(&s, Some(&b), None, 3);
        assert_eq!((cut.tree.nodes, cut.tree.shown), (5, 3));
        assert_eq!(cut.tree.levels[2].len(), 7);
    }
}
