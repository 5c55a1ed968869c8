//! The state machine graph: states as boxes, transitions as arrows, Map and Parallel states as
//! nested groups, laid out in layers from the definition (deterministic, no randomness).
//!
//! A small Sugiyama-style layout: layers by longest path from `StartAt` (loops become back
//! edges drawn on the right), a dummy point per layer crossed by a long edge so that arrows
//! never cut through boxes, barycenter ordering within layers, then x positions pulled towards
//! the neighbours' centres without overlap. Containers are laid out inside-out: a Map's item
//! processor or a Parallel's branches first, then the container as one big box.

use leasehold_asl::definition::{ChoiceRule, CmpOperand, JTemplate, Kind, State, StateMachine};
use serde::Serialize;
use std::collections::HashMap;

/// The id of the start marker of the top-level graph.
pub const START: &str = "__start__";
/// The id of the end marker of the top-level graph.
pub const END: &str = "__end__";

const NODE_H: f64 = 44.0;
const MARKER_W: f64 = 72.0;
const MARKER_H: f64 = 26.0;
const LAYER_GAP: f64 = 46.0;
const NODE_GAP: f64 = 36.0;
const DUMMY_W: f64 = 10.0;
/// Space around a container's inner graph, and its title bar.
const PAD: f64 = 14.0;
const HEADER: f64 = 30.0;
const BRANCH_GAP: f64 = 18.0;
const MARGIN: f64 = 16.0;
/// Back edges run on the right, this far apart.
const LANE: f64 = 14.0;

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

/// One vertex of the layered graph: a state, a marker or a dummy point of a long edge.
struct Vertex {
    w: f64,
    h: f64,
    layer: usize,
    x: f64,
    y: f64,
    dummy: bool,
}

/// A transition before layout.
struct Link {
    from: usize,
    to: usize,
    kind: &'static str,
    label: String,
    title: String,
}

fn truncate(text: &str, max: usize) -> String {
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

fn layout_machine(machine: &StateMachine, top: bool, parent: Option<&str>) -> Sub {
    let n = machine.states.len();
    // Boxes first: containers need their inner layout to know their size.
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
                let w = subs.iter().map(|s| s.w).sum::<f64>()
                    + BRANCH_GAP * subs.len().saturating_sub(1) as f64
                    + 2.0 * PAD;
                let h = subs.iter().map(|s| s.h).fold(0.0, f64::max) + HEADER + PAD;
                (w.max(leaf_width(state)), h, subs)
            }
            _ => (leaf_width(state), NODE_H, Vec::new()),
        };
        inner.push(subs);
        vertices.push(Vertex {
            w,
            h,
            layer: 0,
            x: 0.0,
            y: 0.0,
            dummy: false,
        });
    }
    let (start, end) = if top {
        for _ in 0..2 {
            vertices.push(Vertex {
                w: MARKER_W,
                h: MARKER_H,
                layer: 0,
                x: 0.0,
                y: 0.0,
                dummy: false,
            });
        }
        (Some(n), Some(n + 1))
    } else {
        (None, None)
    };
    let index = |name: &str| machine.index.get(name).copied();

    // Transitions in a fixed order: start, then per state choices, default, next, catches, end.
    let mut links: Vec<Link> = Vec::new();
    let mut retries: Vec<(usize, String)> = Vec::new();
    if let (Some(s), Some(first)) = (start, index(&machine.start_at)) {
        links.push(Link {
            from: s,
            to: first,
            kind: "start",
            label: String::new(),
            title: String::new(),
        });
    }
    for (i, state) in machine.states.iter().enumerate() {
        if let Kind::Choice { choices, default } = &state.kind {
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
        if let Some(to) = state.next.as_deref().filter(|_| !state.end).and_then(index) {
            links.push(Link {
                from: i,
                to,
                kind: "next",
                label: String::new(),
                title: String::new(),
            });
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
        if !state.retry.is_empty() {
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
            retries.push((i, format!("Retry\n{text}")));
        }
        let terminal = state.end || matches!(state.kind, Kind::Succeed | Kind::Fail { .. });
        if let (Some(e), true) = (end, terminal) {
            links.push(Link {
                from: i,
                to: e,
                kind: "end",
                label: String::new(),
                title: String::new(),
            });
        }
    }

    // Depth-first search from the start: edges to a vertex on the stack are back edges.
    let total = vertices.len();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); total];
    for (k, l) in links.iter().enumerate() {
        out[l.from].push(k);
    }
    let mut back = vec![false; links.len()];
    let mut state_of = vec![0u8; total]; // 0 new, 1 on stack, 2 done
    let mut discovery: Vec<usize> = Vec::with_capacity(total);
    let mut post: Vec<usize> = Vec::with_capacity(total);
    let first = start.or_else(|| index(&machine.start_at));
    let roots: Vec<usize> = first.into_iter().chain(0..n).chain(end).collect::<Vec<_>>();
    for root in roots {
        if state_of[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state_of[root] = 1;
        discovery.push(root);
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&k) = out[v].get(*next) {
                *next += 1;
                let w = links[k].to;
                match state_of[w] {
                    0 => {
                        state_of[w] = 1;
                        discovery.push(w);
                        stack.push((w, 0));
                    }
                    1 => back[k] = true,
                    _ => {}
                }
            } else {
                state_of[v] = 2;
                post.push(v);
                stack.pop();
            }
        }
    }

    // Layers by longest path over the forward edges, in topological order.
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); total];
    for (k, l) in links.iter().enumerate() {
        if !back[k] {
            incoming[l.to].push(k);
        }
    }
    for &v in post.iter().rev() {
        let layer = incoming[v]
            .iter()
            .map(|&k| vertices[links[k].from].layer + 1)
            .max()
            .unwrap_or(0);
        vertices[v].layer = layer;
    }
    if let Some(e) = end {
        let deepest = (0..n).map(|v| vertices[v].layer).max().unwrap_or(0);
        vertices[e].layer = deepest + 1;
    }
    let layers = vertices.iter().map(|v| v.layer).max().unwrap_or(0) + 1;

    // Long forward edges get a dummy vertex in every layer they cross.
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(links.len());
    for (k, l) in links.iter().enumerate() {
        let mut chain = vec![l.from];
        if !back[k] {
            let (a, b) = (vertices[l.from].layer, vertices[l.to].layer);
            for layer in a + 1..b {
                vertices.push(Vertex {
                    w: DUMMY_W,
                    h: 0.0,
                    layer,
                    x: 0.0,
                    y: 0.0,
                    dummy: true,
                });
                chain.push(vertices.len() - 1);
            }
        }
        chain.push(l.to);
        chains.push(chain);
    }
    let count = vertices.len();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (k, chain) in chains.iter().enumerate() {
        if back[k] {
            continue;
        }
        for pair in chain.windows(2) {
            succs[pair[0]].push(pair[1]);
            preds[pair[1]].push(pair[0]);
        }
    }

    // Order within layers: discovery order, dummies after their edge's source, then
    // barycenter sweeps (stable sorts keep it deterministic).
    let mut rank = vec![usize::MAX; count];
    for (i, &v) in discovery.iter().enumerate() {
        rank[v] = i * 1000;
    }
    for chain in &chains {
        let base = rank[chain[0]];
        for (j, &d) in chain.iter().enumerate().skip(1) {
            if vertices[d].dummy {
                rank[d] = base + j;
            }
        }
    }
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); layers];
    let mut by_rank: Vec<usize> = (0..count).collect();
    by_rank.sort_by_key(|&v| (rank[v], v));
    for v in by_rank {
        order[vertices[v].layer].push(v);
    }
    let mut pos = vec![0.0f64; count];
    let set_pos = |order: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for layer in order {
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    set_pos(&order, &mut pos);
    for sweep in 0..4 {
        let down = sweep % 2 == 0;
        let range: Vec<usize> = if down {
            (1..layers).collect()
        } else {
            (0..layers.saturating_sub(1)).rev().collect()
        };
        for l in range {
            let neighbours = if down { &preds } else { &succs };
            let mut keyed: Vec<(f64, usize)> = order[l]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    let key = if ns.is_empty() {
                        pos[v]
                    } else {
                        ns.iter().map(|&u| pos[u]).sum::<f64>() / ns.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            order[l] = keyed.into_iter().map(|(_, v)| v).collect();
            for (i, &v) in order[l].iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    }

    // x: packed and centred, then pulled towards the neighbours' centres without overlap.
    for layer in &order {
        let width: f64 = layer.iter().map(|&v| vertices[v].w).sum::<f64>()
            + NODE_GAP * layer.len().saturating_sub(1) as f64;
        let mut x = -width / 2.0;
        for &v in layer {
            vertices[v].x = x + vertices[v].w / 2.0;
            x += vertices[v].w + NODE_GAP;
        }
    }
    for pass in 0..6 {
        let down = pass % 2 == 0;
        let range: Vec<usize> = if down {
            (1..layers).collect()
        } else {
            (0..layers.saturating_sub(1)).rev().collect()
        };
        for l in range {
            let neighbours = if down { &preds } else { &succs };
            let desired: Vec<f64> = order[l]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    if ns.is_empty() {
                        vertices[v].x
                    } else {
                        ns.iter().map(|&u| vertices[u].x).sum::<f64>() / ns.len() as f64
                    }
                })
                .collect();
            let placed = place(
                &desired,
                &order[l].iter().map(|&v| vertices[v].w).collect::<Vec<_>>(),
            );
            for (i, &v) in order[l].iter().enumerate() {
                vertices[v].x = placed[i];
            }
        }
    }

    // y: layers stacked, boxes top-aligned in their layer.
    let mut layer_top = vec![0.0f64; layers];
    let mut layer_h = vec![0.0f64; layers];
    for v in &vertices {
        layer_h[v.layer] = layer_h[v.layer].max(v.h);
    }
    let mut y = 0.0;
    for l in 0..layers {
        layer_top[l] = y;
        y += layer_h[l] + LAYER_GAP;
    }
    for v in &mut vertices {
        v.y = layer_top[v.layer];
        if v.dummy {
            v.h = layer_h[v.layer];
        }
    }

    // Normalise to x >= 0 (x is still each box's centre here).
    let min_x = vertices
        .iter()
        .map(|v| v.x - v.w / 2.0)
        .fold(f64::INFINITY, f64::min);
    let min_x = if min_x.is_finite() { min_x } else { 0.0 };
    for v in &mut vertices {
        v.x -= min_x;
    }
    let mut width = vertices.iter().map(|v| v.x + v.w / 2.0).fold(0.0, f64::max);
    let height = (y - LAYER_GAP).max(0.0);

    // Ports: a box's outgoing edges leave from points spread along its bottom in the order of
    // where they go, and incoming ones arrive spread along its top.
    let mut out_ports: HashMap<(usize, usize), f64> = HashMap::new();
    let mut in_ports: HashMap<(usize, usize), f64> = HashMap::new();
    for v in 0..count {
        if vertices[v].dummy {
            continue;
        }
        let spread = |ends: Vec<(f64, usize)>, ports: &mut HashMap<(usize, usize), f64>| {
            let mut ends = ends;
            ends.sort_by(|a, b| a.0.total_cmp(&b.0));
            let k = ends.len() as f64;
            let span = (vertices[v].w * 0.6).min(26.0 * (k - 1.0));
            for (j, (_, chain)) in ends.into_iter().enumerate() {
                let offset = if k > 1.0 {
                    -span / 2.0 + span * j as f64 / (k - 1.0)
                } else {
                    0.0
                };
                ports.insert((chain, v), vertices[v].x + offset);
            }
        };
        let outs: Vec<(f64, usize)> = chains
            .iter()
            .enumerate()
            .filter(|(k, c)| !back[*k] && c[0] == v)
            .map(|(k, c)| (vertices[c[1]].x, k))
            .collect();
        spread(outs, &mut out_ports);
        let ins: Vec<(f64, usize)> = chains
            .iter()
            .enumerate()
            .filter(|(k, c)| !back[*k] && c[c.len() - 1] == v)
            .map(|(k, c)| (vertices[c[c.len() - 2]].x, k))
            .collect();
        spread(ins, &mut in_ports);
    }

    let mut edges: Vec<Edge> = Vec::with_capacity(links.len() + retries.len());
    let mut lane = 0usize;
    let id_of = |v: usize| -> String {
        if Some(v) == start {
            START.to_owned()
        } else if Some(v) == end {
            END.to_owned()
        } else {
            machine.states[v].name.clone()
        }
    };
    for (k, link) in links.iter().enumerate() {
        let chain = &chains[k];
        let (a, b) = (&vertices[link.from], &vertices[link.to]);
        let points = if back[k] {
            // Up the right-hand side, one lane per back edge.
            lane += 1;
            let x = width + LANE * lane as f64;
            let (ya, yb) = (a.y + a.h / 2.0, b.y + b.h / 2.0);
            vec![
                [a.x + a.w / 2.0, ya],
                [x, ya],
                [x, yb],
                [b.x + b.w / 2.0, yb],
            ]
        } else {
            // Every forward edge has both ports; the box's centre is only a fallback.
            let out_x = out_ports.get(&(k, link.from)).copied().unwrap_or(a.x);
            let mut points = vec![[out_x, a.y + a.h]];
            for &d in &chain[1..chain.len() - 1] {
                let dv = &vertices[d];
                points.push([dv.x, dv.y]);
                points.push([dv.x, dv.y + dv.h]);
            }
            let in_x = in_ports.get(&(k, link.to)).copied().unwrap_or(b.x);
            points.push([in_x, b.y]);
            points
        };
        edges.push(Edge {
            from: id_of(link.from),
            to: id_of(link.to),
            kind: link.kind,
            label: link.label.clone(),
            title: link.title.clone(),
            points,
        });
    }
    width += LANE * lane as f64;
    for (i, title) in retries {
        let v = &vertices[i];
        let right = v.x + v.w / 2.0;
        let (y1, y2) = (v.y + v.h * 0.3, v.y + v.h * 0.7);
        edges.push(Edge {
            from: machine.states[i].name.clone(),
            to: machine.states[i].name.clone(),
            kind: "retry",
            label: String::new(),
            title,
            points: vec![
                [right, y1],
                [right + 16.0, y1],
                [right + 16.0, y2],
                [right, y2],
            ],
        });
        width = width.max(right + 18.0);
    }

    // Nodes, with the containers' inner graphs moved into their boxes.
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
        let inner_w: f64 = subs.iter().map(|s| s.w).sum::<f64>()
            + BRANCH_GAP * subs.len().saturating_sub(1) as f64;
        let mut x = left + (v.w - inner_w) / 2.0;
        for (b, mut sub) in subs.into_iter().enumerate() {
            if let Kind::Parallel { .. } = state.kind {
                nested_nodes.push(Node {
                    id: format!("{}#{b}", state.name),
                    kind: "branch",
                    state_type: String::new(),
                    label: format!("Branch {}", b + 1),
                    detail: String::new(),
                    parent: Some(state.name.clone()),
                    x,
                    y: top + HEADER,
                    w: sub.w,
                    h: sub.h,
                });
            }
            shift(&mut sub, x, top + HEADER);
            x += sub.w + BRANCH_GAP;
            nested_nodes.extend(sub.nodes);
            nested_edges.extend(sub.edges);
        }
    }
    for (marker, id, label) in [(start, START, "Start"), (end, END, "End")] {
        if let Some(m) = marker {
            let v = &vertices[m];
            nodes.push(Node {
                id: id.to_owned(),
                kind: if id == START { "start" } else { "end" },
                state_type: String::new(),
                label: label.to_owned(),
                detail: String::new(),
                parent: None,
                x: v.x - v.w / 2.0,
                y: v.y,
                w: v.w,
                h: v.h,
            });
        }
    }
    // Containers before their contents, so that the contents are drawn on top.
    nodes.extend(nested_nodes);
    edges.extend(nested_edges);
    Sub {
        w: width,
        h: height,
        nodes,
        edges,
    }
}

/// Centres as close to `desired` as possible, in the given order, at least `NODE_GAP` apart:
/// the average of a left-to-right and a right-to-left greedy placement (both feasible, so their
/// average is too).
fn place(desired: &[f64], widths: &[f64]) -> Vec<f64> {
    let n = desired.len();
    if n == 0 {
        return Vec::new();
    }
    let gap = |i: usize| (widths[i] + widths[i + 1]) / 2.0 + NODE_GAP;
    let mut left = desired.to_vec();
    for i in 1..n {
        left[i] = left[i].max(left[i - 1] + gap(i - 1));
    }
    let mut right = desired.to_vec();
    for i in (0..n - 1).rev() {
        right[i] = right[i].min(right[i + 1] - gap(i));
    }
    left.iter()
        .zip(&right)
        .map(|(a, b)| (a + b) / 2.0)
        .collect()
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
