//! The state machine graph: states as boxes, transitions as arrows, Map and Parallel states as
//! nested groups, laid out in layers from the definition (deterministic, no randomness).
//!
//! A small Sugiyama-style layout: layers by longest path from `StartAt` (loops become back
//! edges drawn on the right), a dummy point per layer crossed by a long edge so that arrows
//! never cut through boxes, barycenter ordering within layers, then x positions pulled towards
//! the neighbours' centres without overlap. Containers are laid out inside-out: a Map's item
//! processor or a Parallel's branches first, then the container as one big box.

use crate::layers::{Layered, Vertex, assign_layers, depth_first};
use leasehold_asl::definition::{ChoiceRule, CmpOperand, JTemplate, Kind, State, StateMachine};
use serde::Serialize;

/// The id of the start marker of the top-level graph.
pub const START: &str = "__start__";
/// The id of the end marker of the top-level graph.
pub const END: &str = "__end__";

const NODE_H: f64 = 44.0;
const MARKER_W: f64 = 72.0;
const MARKER_H: f64 = 26.0;
/// Space around a container's inner graph, and its title bar.
const PAD: f64 = 14.0;
const HEADER: f64 = 30.0;
const BRANCH_GAP: f64 = 18.0;
const MARGIN: f64 = 16.0;

/// A laid-out graph; coordinates in SVG user units, boxes by their top-left corner.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// The state name (unique in a definition), [`START`], [`END`], or `<Parallel>#<i>` for a
    /// Parallel branch.
    pub id: String,
    /// `state`, `map`, `parallel`, `branch`, `start` or `end`.
    pub kind: &'static str,
    /// The ASL type (`Task`, `Choice`, ...); empty for markers and branches.
    pub state_type: String,
    pub label: String,
    /// A short second line: the Task resource, the Wait time, the Fail error.
    pub detail: String,
    /// The enclosing Map, Parallel or branch.
    pub parent: Option<String>,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `start`, `next`, `choice`, `default`, `catch`, `retry` (a loop on its state) or `end`.
    pub kind: &'static str,
    /// Short text drawn on the edge.
    pub label: String,
    /// The full text (tooltip): the choice rule, the caught errors, the retriers.
    pub title: String,
    /// A polyline from the source's border to the target's border.
    pub points: Vec<[f64; 2]>,
}

/// Lays out a whole state machine with start and end markers.
pub fn layout(machine: &StateMachine) -> Graph {
    let sub = layout_machine(machine, true, None);
    let mut nodes = sub.nodes;
    let mut edges = sub.edges;
    for n in &mut nodes {
        n.x += MARGIN;
        n.y += MARGIN;
    }
    for e in &mut edges {
        for p in &mut e.points {
            p[0] += MARGIN;
            p[1] += MARGIN;
        }
    }
    let mut width: f64 = 0.0;
    let mut height: f64 = 0.0;
    for n in &nodes {
        width = width.max(n.x + n.w);
        height = height.max(n.y + n.h);
    }
    for e in &edges {
        for p in &e.points {
            width = width.max(p[0]);
            height = height.max(p[1]);
        }
    }
    Graph {
        width: (width + MARGIN).ceil(),
        height: (height + MARGIN).ceil(),
        nodes,
        edges,
    }
}

/// A laid-out (sub-)machine in its own coordinates, from (0, 0).
struct Sub {
    w: f64,
    h: f64,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// A transition before layout.
struct Link {
    from: usize,
    to: usize,
    kind: &'static str,
    label: String,
    title: String,
}

/// `text` cut to at most `max` characters, the last one an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

fn rule_text(rule: &ChoiceRule) -> String {
    let join = |rules: &[ChoiceRule], sep: &str| {
        rules
            .iter()
            .map(|r| match r {
                ChoiceRule::And(_) | ChoiceRule::Or(_) => format!("({})", rule_text(r)),
                _ => rule_text(r),
            })
            .collect::<Vec<_>>()
            .join(sep)
    };
    match rule {
        ChoiceRule::And(rules) => join(rules, " and "),
        ChoiceRule::Or(rules) => join(rules, " or "),
        ChoiceRule::Not(inner) => format!("not ({})", rule_text(inner)),
        ChoiceRule::Cmp {
            variable_src,
            op,
            operand,
            ..
        } => {
            let operand = match operand {
                CmpOperand::Lit(v) => v.to_string(),
                CmpOperand::Path(_) => "(path)".to_owned(),
            };
            format!("{variable_src} {op} {operand}")
        }
        ChoiceRule::Condition(JTemplate::Expr(_, src)) => src.clone(),
        ChoiceRule::Condition(JTemplate::Lit(v)) => v.to_string(),
        ChoiceRule::Condition(_) => "Condition".to_owned(),
    }
}

/// The second line of a state's box.
fn detail(state: &State) -> String {
    match &state.kind {
        Kind::Task { resource, .. } => {
            let short = resource
                .strip_prefix("arn:aws:states:::")
                .map(str::to_owned)
                .or_else(|| {
                    resource
                        .contains(":function:")
                        .then(|| format!("lambda {}", resource.rsplit(':').next().unwrap_or("")))
                })
                .unwrap_or_else(|| resource.clone());
            truncate(&short, 34)
        }
        Kind::Fail { .. } | Kind::Succeed | Kind::Pass { .. } | Kind::Choice { .. } => {
            state.type_name.clone()
        }
        Kind::Wait { .. } => "Wait".to_owned(),
        Kind::Map(spec) => {
            if spec.distributed {
                "Map (distributed)".to_owned()
            } else {
                "Map".to_owned()
            }
        }
        Kind::Parallel { branches } => format!("Parallel, {} branches", branches.len()),
    }
}

fn text_width(text: &str, per_char: f64) -> f64 {
    text.chars().count() as f64 * per_char
}

fn leaf_width(state: &State) -> f64 {
    (text_width(&state.name, 7.4).max(text_width(&detail(state), 6.2)) + 28.0).clamp(120.0, 300.0)
}

fn shift(sub: &mut Sub, dx: f64, dy: f64) {
    for n in &mut sub.nodes {
        n.x += dx;
        n.y += dy;
    }
    for e in &mut sub.edges {
        for p in &mut e.points {
            p[0] += dx;
            p[1] += dy;
        }
    }
}

/// The boxes of a machine's states, with the laid-out inner graphs of its containers (a Map's
/// item processor, a Parallel's branches in their frames).
fn boxes(machine: &StateMachine) -> (Vec<Vec<Sub>>, Vec<Vertex>) {
    let n = machine.states.len();
    let mut inner: Vec<Vec<Sub>> = Vec::with_capacity(n);
    let mut vertices: Vec<Vertex> = Vec::with_capacity(n + 2);
    for state in &machine.states {
        let (w, h, subs) = match &state.kind {
            Kind::Map(spec) => {
                let sub = layout_machine(&spec.processor, false, Some(&state.name));
                let w = (sub.w + 2.0 * PAD).max(leaf_width(state));
                (w, sub.h + HEADER + PAD, vec![sub])
            }
            Kind::Parallel { branches } => {
                let subs: Vec<Sub> = branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let id = format!("{}#{i}", state.name);
                        let mut sub = layout_machine(b, false, Some(&id));
                        // The branch's own frame around its states.
                        shift(&mut sub, PAD, HEADER);
                        sub.w += 2.0 * PAD;
                        sub.h += HEADER + PAD;
                        sub
                    })
                    .collect();
                let w = row_width(&subs) + 2.0 * PAD;
                let h = subs.iter().map(|s| s.h).fold(0.0, f64::max) + HEADER + PAD;
                (w.max(leaf_width(state)), h, subs)
            }
            _ => (leaf_width(state), NODE_H, Vec::new()),
        };
        inner.push(subs);
        vertices.push(Vertex::sized(w, h));
    }
    (inner, vertices)
}

/// The width of branches side by side.
fn row_width(subs: &[Sub]) -> f64 {
    subs.iter().map(|s| s.w).sum::<f64>() + BRANCH_GAP * subs.len().saturating_sub(1) as f64
}

fn plain_link(from: usize, to: usize, kind: &'static str) -> Link {
    Link {
        from,
        to,
        kind,
        label: String::new(),
        title: String::new(),
    }
}

/// The arrows of a Choice state: one per rule, then the default.
fn choice_links(machine: &StateMachine, i: usize, links: &mut Vec<Link>) {
    let Kind::Choice { choices, default } = &machine.states[i].kind else {
        return;
    };
    let index = |name: &str| machine.index.get(name).copied();
    for (k, choice) in choices.iter().enumerate() {
        if let Some(to) = index(&choice.next) {
            let text = rule_text(&choice.rule);
            links.push(Link {
                from: i,
                to,
                kind: "choice",
                label: truncate(&text, 22),
                title: format!("Rule {}: {text}", k + 1),
            });
        }
    }
    if let Some(to) = default.as_deref().and_then(index) {
        links.push(Link {
            from: i,
            to,
            kind: "default",
            label: "Default".to_owned(),
            title: "Default".to_owned(),
        });
    }
}

/// The tooltip of a state's retry loop; `None` when it has no retrier.
fn retry_title(state: &State) -> Option<String> {
    if state.retry.is_empty() {
        return None;
    }
    let text = state
        .retry
        .iter()
        .map(|r| {
            format!(
                "{} (max {}, every {}s x{})",
                r.error_equals.join(", "),
                r.max_attempts,
                r.interval_seconds,
                r.backoff_rate
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Some(format!("Retry\n{text}"))
}

/// Transitions in a fixed order: start, then per state choices, default, next, catches, end;
/// and the retry loops (state, tooltip), drawn apart.
fn transitions(
    machine: &StateMachine,
    start: Option<usize>,
    end: Option<usize>,
) -> (Vec<Link>, Vec<(usize, String)>) {
    let index = |name: &str| machine.index.get(name).copied();
    let mut links: Vec<Link> = Vec::new();
    let mut retries: Vec<(usize, String)> = Vec::new();
    if let (Some(s), Some(first)) = (start, index(&machine.start_at)) {
        links.push(plain_link(s, first, "start"));
    }
    for (i, state) in machine.states.iter().enumerate() {
        choice_links(machine, i, &mut links);
        if let Some(to) = state.next.as_deref().filter(|_| !state.end).and_then(index) {
            links.push(plain_link(i, to, "next"));
        }
        for catcher in &state.catch {
            if let Some(to) = index(&catcher.next) {
                let errors = catcher.error_equals.join(", ");
                links.push(Link {
                    from: i,
                    to,
                    kind: "catch",
                    label: truncate(&errors, 22),
                    title: format!("Catch {errors}"),
                });
            }
        }
        if let Some(title) = retry_title(state) {
            retries.push((i, title));
        }
        let terminal = state.end || matches!(state.kind, Kind::Succeed | Kind::Fail { .. });
        if let (Some(e), true) = (end, terminal) {
            links.push(plain_link(i, e, "end"));
        }
    }
    (links, retries)
}

/// A loop on the right of a state's box for its retriers; widens `width` to hold it.
fn retry_edge(name: &str, v: &Vertex, title: String, width: &mut f64) -> Edge {
    let right = v.x + v.w / 2.0;
    let (y1, y2) = (v.y + v.h * 0.3, v.y + v.h * 0.7);
    *width = width.max(right + 18.0);
    Edge {
        from: name.to_owned(),
        to: name.to_owned(),
        kind: "retry",
        label: String::new(),
        title,
        points: vec![
            [right, y1],
            [right + 16.0, y1],
            [right + 16.0, y2],
            [right, y2],
        ],
    }
}

/// A box of the graph that is not a state: a marker or a Parallel branch's frame.
fn frame(id: String, kind: &'static str, label: String, parent: Option<String>) -> Node {
    Node {
        id,
        kind,
        state_type: String::new(),
        label,
        detail: String::new(),
        parent,
        x: 0.0,
        y: 0.0,
        w: 0.0,
        h: 0.0,
    }
}

/// The states' nodes, then the containers' inner graphs moved into their boxes (containers
/// before their contents, so that the contents are drawn on top).
fn state_nodes(
    machine: &StateMachine,
    vertices: &[Vertex],
    inner: Vec<Vec<Sub>>,
    parent: Option<&str>,
) -> (Vec<Node>, Vec<Node>, Vec<Edge>) {
    let mut nodes: Vec<Node> = Vec::new();
    let mut nested_edges: Vec<Edge> = Vec::new();
    let mut nested_nodes: Vec<Node> = Vec::new();
    for (i, (state, subs)) in machine.states.iter().zip(inner).enumerate() {
        let v = &vertices[i];
        let (left, top) = (v.x - v.w / 2.0, v.y);
        let kind = match state.kind {
            Kind::Map(_) => "map",
            Kind::Parallel { .. } => "parallel",
            _ => "state",
        };
        nodes.push(Node {
            id: state.name.clone(),
            kind,
            state_type: state.type_name.clone(),
            label: state.name.clone(),
            detail: detail(state),
            parent: parent.map(str::to_owned),
            x: left,
            y: top,
            w: v.w,
            h: v.h,
        });
        let mut x = left + (v.w - row_width(&subs)) / 2.0;
        for (b, mut sub) in subs.into_iter().enumerate() {
            if let Kind::Parallel { .. } = state.kind {
                let id = format!("{}#{b}", state.name);
                let label = format!("Branch {}", b + 1);
                nested_nodes.push(Node {
                    x,
                    y: top + HEADER,
                    w: sub.w,
                    h: sub.h,
                    ..frame(id, "branch", label, Some(state.name.clone()))
                });
            }
            shift(&mut sub, x, top + HEADER);
            x += sub.w + BRANCH_GAP;
            nested_nodes.extend(sub.nodes);
            nested_edges.extend(sub.edges);
        }
    }
    (nodes, nested_nodes, nested_edges)
}

fn layout_machine(machine: &StateMachine, top: bool, parent: Option<&str>) -> Sub {
    let n = machine.states.len();
    // Boxes first: containers need their inner layout to know their size.
    let (inner, mut vertices) = boxes(machine);
    let (start, end) = if top {
        vertices.push(Vertex::sized(MARKER_W, MARKER_H));
        vertices.push(Vertex::sized(MARKER_W, MARKER_H));
        (Some(n), Some(n + 1))
    } else {
        (None, None)
    };
    let (links, retries) = transitions(machine, start, end);

    // Depth-first search from the start: edges to a vertex on the stack are back edges.
    let first = start.or_else(|| machine.index.get(&machine.start_at).copied());
    let ends: Vec<(usize, usize)> = links.iter().map(|l| (l.from, l.to)).collect();
    let roots = first.into_iter().chain(0..n).chain(end);
    let search = depth_first(vertices.len(), &ends, roots);
    let layers = assign_layers(&mut vertices, &ends, &search, n, end);
    let mut graph = Layered::new(vertices, ends, search.back, layers);
    graph.order_layers(&search.discovery);
    graph.place_x();
    let height = graph.place_y();
    let width = graph.normalise_x();

    let id_of = |v: usize| -> String {
        if Some(v) == start {
            START.to_owned()
        } else if Some(v) == end {
            END.to_owned()
        } else {
            machine.states[v].name.clone()
        }
    };
    let (routes, mut width) = graph.route(width);
    let mut edges: Vec<Edge> = links
        .into_iter()
        .zip(routes)
        .map(|(link, points)| Edge {
            from: id_of(link.from),
            to: id_of(link.to),
            kind: link.kind,
            label: link.label,
            title: link.title,
            points,
        })
        .collect();
    for (i, title) in retries {
        let edge = retry_edge(
            &machine.states[i].name,
            &graph.vertices[i],
            title,
            &mut width,
        );
        edges.push(edge);
    }

    let (mut nodes, nested_nodes, nested_edges) =
        state_nodes(machine, &graph.vertices, inner, parent);
    for (marker, id, kind, label) in [(start, START, "start", "Start"), (end, END, "end", "End")] {
        if let Some(m) = marker {
            let v = &graph.vertices[m];
            nodes.push(Node {
                x: v.x - v.w / 2.0,
                y: v.y,
                w: v.w,
                h: v.h,
                ..frame(id.to_owned(), kind, label.to_owned(), None)
            });
        }
    }
    nodes.extend(nested_nodes);
    edges.extend(nested_edges);
    Sub {
        w: width,
        h: height,
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays out a definition; template substitutions (`${Name}`) become `1`, as a deployment
    /// would put a value there.
    fn graph(definition: &str) -> Graph {
        let mut text = definition.to_owned();
        while let Some(start) = text.find("${") {
            let end = start + text[start..].find('}').expect("closed substitution");
            text.replace_range(start..=end, "1");
        }
        layout(&leasehold_asl::load(&text).expect("valid definition"))
    }

    fn node<'a>(g: &'a Graph, id: &str) -> &'a Node {
        g.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn overlap(a: &Node, b: &Node) -> bool {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    }

    fn inside(inner: &Node, outer: &Node) -> bool {
        inner.x >= outer.x
            && inner.y >= outer.y
            && inner.x + inner.w <= outer.x + outer.w
            && inner.y + inner.h <= outer.y + outer.h
    }

    #[test]
    fn a_chain_is_drawn_top_down_between_start_and_end() {
        let g = graph(
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Succeed"}}}"#,
        );
        let (s, a, b, e) = (node(&g, START), node(&g, "A"), node(&g, "B"), node(&g, END));
        assert!(s.y < a.y && a.y < b.y && b.y < e.y);
        let kinds: Vec<(&str, &str, &str)> = g
            .edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            [(START, "A", "start"), ("A", "B", "next"), ("B", END, "end")]
        );
        // Straight down: the single successor sits under its predecessor.
        assert!((a.x + a.w / 2.0 - (b.x + b.w / 2.0)).abs() < 1.0);
    }

    #[test]
    fn choices_catches_and_retries_become_labelled_edges() {
        let g = graph(
            r#"{"StartAt":"C","States":{
              "C":{"Type":"Choice","Choices":[{"Variable":"$.x","NumericGreaterThan":1,"Next":"T"}],"Default":"F"},
              "T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"f"},
                   "Retry":[{"ErrorEquals":["Busy"],"MaxAttempts":2}],
                   "Catch":[{"ErrorEquals":["States.ALL"],"Next":"F"}],"End":true},
              "F":{"Type":"Fail","Error":"E"}}}"#,
        );
        let edge = |from: &str, to: &str, kind: &str| {
            g.edges
                .iter()
                .find(|e| e.from == from && e.to == to && e.kind == kind)
                .unwrap_or_else(|| panic!("no {kind} edge {from} -> {to}"))
        };
        // Long labels are cut; the tooltip has the whole rule.
        let choice = edge("C", "T", "choice");
        assert_eq!(choice.label, "$.x NumericGreaterTha…");
        assert_eq!(choice.title, "Rule 1: $.x NumericGreaterThan 1");
        assert_eq!(edge("C", "F", "default").label, "Default");
        assert_eq!(edge("T", "F", "catch").label, "States.ALL");
        assert!(edge("T", "T", "retry").title.contains("Busy"));
        edge("T", END, "end");
        edge("F", END, "end");
        assert_eq!(node(&g, "T").detail, "lambda:invoke");
    }

    #[test]
    fn map_and_parallel_contents_are_nested_inside_their_group() {
        let g = graph(
            r#"{"StartAt":"P","States":{
              "P":{"Type":"Parallel","Next":"M","Branches":[
                {"StartAt":"B1","States":{"B1":{"Type":"Pass","End":true}}},
                {"StartAt":"B2","States":{"B2":{"Type":"Pass","Next":"B3"},"B3":{"Type":"Pass","End":true}}}]},
              "M":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"I","States":{
                "I":{"Type":"Pass","Next":"J"},"J":{"Type":"Succeed"}}}}}}"#,
        );
        let (p, m) = (node(&g, "P"), node(&g, "M"));
        assert_eq!((p.kind, m.kind), ("parallel", "map"));
        for (child, parent) in [("P#0", "P"), ("P#1", "P"), ("I", "M"), ("J", "M")] {
            assert!(
                inside(node(&g, child), node(&g, parent)),
                "{child} in {parent}"
            );
            assert_eq!(node(&g, child).parent.as_deref(), Some(parent));
        }
        for (child, branch) in [("B1", "P#0"), ("B2", "P#1"), ("B3", "P#1")] {
            assert!(
                inside(node(&g, child), node(&g, branch)),
                "{child} in {branch}"
            );
        }
        // Nested machines have no markers of their own; the Map's last state does not go to End.
        assert!(!g.edges.iter().any(|e| e.from == "J" && e.to == END));
        assert!(g.edges.iter().any(|e| e.from == "I" && e.to == "J"));
        assert!(!overlap(node(&g, "P#0"), node(&g, "P#1")));
    }

    #[test]
    fn loops_are_back_edges_and_boxes_never_overlap() {
        let g = graph(
            r#"{"StartAt":"A","States":{
              "A":{"Type":"Pass","Next":"W"},
              "W":{"Type":"Wait","Seconds":1,"Next":"C"},
              "C":{"Type":"Choice","Choices":[{"Variable":"$.done","BooleanEquals":true,"Next":"D"}],"Default":"W"},
              "D":{"Type":"Succeed"}}}"#,
        );
        let back = g
            .edges
            .iter()
            .find(|e| e.from == "C" && e.to == "W")
            .expect("loop edge");
        // It climbs: the last point is above the first.
        assert!(back.points.last().unwrap()[1] < back.points[0][1]);
        let boxes: Vec<&Node> = g.nodes.iter().collect();
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(!overlap(a, b), "{} overlaps {}", a.id, b.id);
            }
        }
        for n in &g.nodes {
            assert!(n.x >= 0.0 && n.x + n.w <= g.width && n.y + n.h <= g.height);
        }
    }

    #[test]
    fn the_connection_workflow_has_every_state_and_no_overlaps() {
        let text = include_str!("../../../statemachines/connection.asl.json");
        let g = graph(text);
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        for name in v["States"].as_object().unwrap().keys() {
            node(&g, name);
        }
        let states: Vec<&Node> = g.nodes.iter().filter(|n| n.kind == "state").collect();
        for (i, a) in states.iter().enumerate() {
            for b in &states[i + 1..] {
                assert!(!overlap(a, b), "{} overlaps {}", a.id, b.id);
            }
        }
        // Release goes to WriteCache both normally and through its Catch: two distinct arrows.
        let both: Vec<&Edge> = g
            .edges
            .iter()
            .filter(|e| e.from == "Release" && e.to == "WriteCache")
            .collect();
        assert_eq!(both.len(), 2);
        assert_ne!(both[0].points, both[1].points);
        // The layout is a function of the definition.
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            serde_json::to_string(&graph(text)).unwrap()
        );
    }
}
