//! The definition as a graph: node ids, edges that lead somewhere, every node reachable from
//! the start, and no cycle the engine could spin in without ever waiting.

use std::collections::{HashMap, VecDeque};

use throughline_proto::orchestration::v1::node::Kind;
use throughline_proto::orchestration::v1::{JourneyDefinition, Node};

use super::{Check, is_node_id};
use crate::definition::edges;

const MAX_NODES: usize = 200;

pub(super) fn check(check: &mut Check<'_>, definition: &JourneyDefinition) {
    let nodes = &definition.nodes;
    if nodes.is_empty() || nodes.len() > MAX_NODES {
        check.push("nodes", format!("1 to {MAX_NODES} nodes"));
    }
    // The first node with each id; duplicates are reported and otherwise ignored.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if !is_node_id(&node.id) {
            check.push(
                &format!("nodes[{i}].id"),
                "lower-case letters, digits, `_` and `-`, 1 to 63 characters",
            );
            continue;
        }
        if let Some(first) = index.get(node.id.as_str()) {
            check.push(
                &format!("nodes[{i}].id"),
                format!("duplicate id `{}`, also nodes[{first}]", node.id),
            );
            continue;
        }
        index.insert(&node.id, i);
    }

    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for (path, next) in edge_paths(node) {
            match index.get(next) {
                Some(target) => successors[i].push(*target),
                None => check.push(
                    &format!("nodes[{i}].{path}"),
                    format!("no node has id `{next}`"),
                ),
            }
        }
    }

    let start = if definition.start_node.is_empty() {
        check.push("start_node", "required: the id of the first node");
        None
    } else {
        let start = index.get(definition.start_node.as_str()).copied();
        if start.is_none() {
            check.push(
                "start_node",
                format!("no node has id `{}`", definition.start_node),
            );
        }
        start
    };
    if let Some(start) = start {
        let reached = reachable(&successors, &[start], |_| true);
        for (i, reached) in reached.iter().enumerate() {
            if !reached && index.get(nodes[i].id.as_str()) == Some(&i) {
                check.push(&format!("nodes[{i}].id"), "not reachable from start_node");
            }
        }
    }
    // Quadratic: only worth it, and only bounded, on a definition of allowed size.
    if nodes.len() <= MAX_NODES {
        cycles_without_wait(check, nodes, &successors);
    }
}

/// The node's edges, each with its exact field path (`branch.cases[1].next`).
fn edge_paths(node: &Node) -> Vec<(String, &str)> {
    // `edges` leaves out empty edges, so the index of a case or an arm is recovered by
    // skipping those with an empty `next` too.
    let mut cases = match &node.kind {
        Some(Kind::Branch(branch)) => branch
            .cases
            .iter()
            .enumerate()
            .filter(|(_, case)| !case.next.is_empty())
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    }
    .into_iter();
    let mut arms = match &node.kind {
        Some(Kind::AbSplit(split)) => split
            .arms
            .iter()
            .enumerate()
            .filter(|(_, arm)| !arm.next.is_empty())
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    }
    .into_iter();
    edges(node)
        .into_iter()
        .map(|(field, next)| {
            let path = match field {
                "branch.cases.next" => {
                    format!("branch.cases[{}].next", cases.next().unwrap_or_default())
                }
                "ab_split.arms.next" => {
                    format!("ab_split.arms[{}].next", arms.next().unwrap_or_default())
                }
                other => other.to_owned(),
            };
            (path, next)
        })
        .collect()
}

/// The nodes reachable from `starts` through nodes `through` accepts (`starts` included).
fn reachable(
    successors: &[Vec<usize>],
    starts: &[usize],
    through: impl Fn(usize) -> bool,
) -> Vec<bool> {
    let mut seen = vec![false; successors.len()];
    let mut queue = VecDeque::new();
    for &start in starts {
        if !seen[start] {
            seen[start] = true;
            queue.push_back(start);
        }
    }
    while let Some(node) = queue.pop_front() {
        for &next in &successors[node] {
            if !seen[next] && through(next) {
                seen[next] = true;
                queue.push_back(next);
            }
        }
    }
    seen
}

fn waits(node: &Node) -> bool {
    matches!(node.kind, Some(Kind::Wait(_) | Kind::WaitForEvent(_)))
}

/// A cycle through no wait would run forever within one engine round; one violation per
/// such cycle group, at its first node.
fn cycles_without_wait(check: &mut Check<'_>, nodes: &[Node], successors: &[Vec<usize>]) {
    let instant = |i: usize| !waits(&nodes[i]);
    // For each instant node, the instant nodes it reaches in one or more steps.
    let reach: Vec<Option<Vec<bool>>> = (0..nodes.len())
        .map(|i| {
            instant(i).then(|| {
                let starts: Vec<usize> = successors[i]
                    .iter()
                    .copied()
                    .filter(|&n| instant(n))
                    .collect();
                reachable(successors, &starts, instant)
            })
        })
        .collect();
    let on_cycle = |i: usize| reach[i].as_ref().is_some_and(|r| r[i]);
    for i in (0..nodes.len()).filter(|&i| on_cycle(i)) {
        let reported_earlier = (0..i).any(|j| {
            on_cycle(j)
                && reach[i].as_ref().is_some_and(|r| r[j])
                && reach[j].as_ref().is_some_and(|r| r[i])
        });
        if !reported_earlier {
            check.push(
                &format!("nodes[{i}].id"),
                format!(
                    "`{}` is on a cycle that passes no wait or wait_for_event node",
                    nodes[i].id
                ),
            );
        }
    }
}
