//! The layered layout of a graph of boxes (a small Sugiyama-style layout): back edges found by
//! a depth-first search, layers by longest path, a dummy vertex per layer a long edge crosses,
//! barycenter ordering within layers, x positions pulled towards the neighbours' centres
//! without overlap, and the edges' polylines. Deterministic: no randomness, stable sorts.

use std::collections::HashMap;

const LAYER_GAP: f64 = 46.0;
const NODE_GAP: f64 = 36.0;
const DUMMY_W: f64 = 10.0;
/// Back edges run on the right, this far apart.
const LANE: f64 = 14.0;

/// One vertex of the layered graph: a state, a marker or a dummy point of a long edge.
pub(crate) struct Vertex {
    pub w: f64,
    pub h: f64,
    pub layer: usize,
    pub x: f64,
    pub y: f64,
    pub dummy: bool,
}

impl Vertex {
    pub fn sized(w: f64, h: f64) -> Vertex {
        Vertex {
            w,
            h,
            layer: 0,
            x: 0.0,
            y: 0.0,
            dummy: false,
        }
    }
}

/// What a depth-first search from the start finds.
pub(crate) struct Search {
    /// Per link: it goes to a vertex on the search's stack (a loop, drawn as a back edge).
    pub back: Vec<bool>,
    /// Vertices in the order they were first reached.
    pub discovery: Vec<usize>,
    /// Vertices in the order they were finished (reversed: a topological order of the forward
    /// edges).
    pub post: Vec<usize>,
}

pub(crate) fn depth_first(
    total: usize,
    ends: &[(usize, usize)],
    roots: impl Iterator<Item = usize>,
) -> Search {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); total];
    for (k, &(from, _)) in ends.iter().enumerate() {
        out[from].push(k);
    }
    let mut search = Search {
        back: vec![false; ends.len()],
        discovery: Vec::with_capacity(total),
        post: Vec::with_capacity(total),
    };
    let mut state_of = vec![0u8; total]; // 0 new, 1 on stack, 2 done
    for root in roots {
        if state_of[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state_of[root] = 1;
        search.discovery.push(root);
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&k) = out[v].get(*next) {
                *next += 1;
                let w = ends[k].1;
                match state_of[w] {
                    0 => {
                        state_of[w] = 1;
                        search.discovery.push(w);
                        stack.push((w, 0));
                    }
                    1 => search.back[k] = true,
                    _ => {}
                }
            } else {
                state_of[v] = 2;
                search.post.push(v);
                stack.pop();
            }
        }
    }
    search
}

/// Layers by longest path over the forward edges, in topological order; the end marker below
/// every state. Returns the number of layers.
pub(crate) fn assign_layers(
    vertices: &mut [Vertex],
    ends: &[(usize, usize)],
    search: &Search,
    states: usize,
    end: Option<usize>,
) -> usize {
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    for (k, &(_, to)) in ends.iter().enumerate() {
        if !search.back[k] {
            incoming[to].push(k);
        }
    }
    for &v in search.post.iter().rev() {
        let layer = incoming[v]
            .iter()
            .map(|&k| vertices[ends[k].0].layer + 1)
            .max()
            .unwrap_or(0);
        vertices[v].layer = layer;
    }
    if let Some(e) = end {
        let deepest = (0..states).map(|v| vertices[v].layer).max().unwrap_or(0);
        vertices[e].layer = deepest + 1;
    }
    vertices.iter().map(|v| v.layer).max().unwrap_or(0) + 1
}

/// The layers in the order of a sweep: downwards from the second, or upwards from the one
/// before last.
fn sweep(layers: usize, down: bool) -> Vec<usize> {
    if down {
        (1..layers).collect()
    } else {
        (0..layers.saturating_sub(1)).rev().collect()
    }
}

/// The mean of `value` over `neighbours`, or `own` when there are none.
fn mean_over(neighbours: &[usize], own: f64, value: impl Fn(usize) -> f64) -> f64 {
    if neighbours.is_empty() {
        own
    } else {
        neighbours.iter().map(|&u| value(u)).sum::<f64>() / neighbours.len() as f64
    }
}

/// Where edges meet a box: x by (link, vertex).
type Ports = HashMap<(usize, usize), f64>;

/// The layered graph of one (sub-)machine while it is laid out.
pub(crate) struct Layered {
    pub vertices: Vec<Vertex>,
    /// Per link: (source, target).
    ends: Vec<(usize, usize)>,
    back: Vec<bool>,
    layers: usize,
    /// Per link: its vertices, from the source through the dummies to the target.
    chains: Vec<Vec<usize>>,
    preds: Vec<Vec<usize>>,
    succs: Vec<Vec<usize>>,
    /// The vertices of each layer, left to right.
    order: Vec<Vec<usize>>,
}

impl Layered {
    /// Long forward edges get a dummy vertex in every layer they cross.
    pub fn new(
        mut vertices: Vec<Vertex>,
        ends: Vec<(usize, usize)>,
        back: Vec<bool>,
        layers: usize,
    ) -> Self {
        let mut chains: Vec<Vec<usize>> = Vec::with_capacity(ends.len());
        for (k, &(from, to)) in ends.iter().enumerate() {
            let mut chain = vec![from];
            if !back[k] {
                let (a, b) = (vertices[from].layer, vertices[to].layer);
                for layer in a + 1..b {
                    let mut dummy = Vertex::sized(DUMMY_W, 0.0);
                    dummy.layer = layer;
                    dummy.dummy = true;
                    vertices.push(dummy);
                    chain.push(vertices.len() - 1);
                }
            }
            chain.push(to);
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
        Layered {
            vertices,
            ends,
            back,
            layers,
            chains,
            preds,
            succs,
            order: Vec::new(),
        }
    }

    /// Order within layers: discovery order, dummies after their edge's source, then
    /// barycenter sweeps (stable sorts keep it deterministic).
    pub fn order_layers(&mut self, discovery: &[usize]) {
        let count = self.vertices.len();
        let mut rank = vec![usize::MAX; count];
        for (i, &v) in discovery.iter().enumerate() {
            rank[v] = i * 1000;
        }
        for chain in &self.chains {
            let base = rank[chain[0]];
            for (j, &d) in chain.iter().enumerate().skip(1) {
                if self.vertices[d].dummy {
                    rank[d] = base + j;
                }
            }
        }
        self.order = vec![Vec::new(); self.layers];
        let mut by_rank: Vec<usize> = (0..count).collect();
        by_rank.sort_by_key(|&v| (rank[v], v));
        for v in by_rank {
            self.order[self.vertices[v].layer].push(v);
        }
        let mut pos = vec![0.0f64; count];
        for layer in &self.order {
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
        for pass in 0..4 {
            let down = pass % 2 == 0;
            let neighbours = if down { &self.preds } else { &self.succs };
            for l in sweep(self.layers, down) {
                let mut keyed: Vec<(f64, usize)> = self.order[l]
                    .iter()
                    .map(|&v| (mean_over(&neighbours[v], pos[v], |u| pos[u]), v))
                    .collect();
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
                self.order[l] = keyed.into_iter().map(|(_, v)| v).collect();
                for (i, &v) in self.order[l].iter().enumerate() {
                    pos[v] = i as f64;
                }
            }
        }
    }

    /// x (each box's centre): packed and centred, then pulled towards the neighbours' centres
    /// without overlap.
    pub fn place_x(&mut self) {
        let vertices = &mut self.vertices;
        for layer in &self.order {
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
            let neighbours = if down { &self.preds } else { &self.succs };
            for l in sweep(self.layers, down) {
                let desired: Vec<f64> = self.order[l]
                    .iter()
                    .map(|&v| mean_over(&neighbours[v], vertices[v].x, |u| vertices[u].x))
                    .collect();
                let widths: Vec<f64> = self.order[l].iter().map(|&v| vertices[v].w).collect();
                for (&v, x) in self.order[l].iter().zip(place(&desired, &widths)) {
                    vertices[v].x = x;
                }
            }
        }
    }

    /// y: layers stacked, boxes top-aligned in their layer. Returns the height.
    pub fn place_y(&mut self) -> f64 {
        let mut layer_top = vec![0.0f64; self.layers];
        let mut layer_h = vec![0.0f64; self.layers];
        for v in &self.vertices {
            layer_h[v.layer] = layer_h[v.layer].max(v.h);
        }
        let mut y = 0.0;
        for l in 0..self.layers {
            layer_top[l] = y;
            y += layer_h[l] + LAYER_GAP;
        }
        for v in &mut self.vertices {
            v.y = layer_top[v.layer];
            if v.dummy {
                v.h = layer_h[v.layer];
            }
        }
        (y - LAYER_GAP).max(0.0)
    }

    /// Moves everything to x >= 0 (x is still each box's centre). Returns the width.
    pub fn normalise_x(&mut self) -> f64 {
        let min_x = self
            .vertices
            .iter()
            .map(|v| v.x - v.w / 2.0)
            .fold(f64::INFINITY, f64::min);
        let min_x = if min_x.is_finite() { min_x } else { 0.0 };
        for v in &mut self.vertices {
            v.x -= min_x;
        }
        self.vertices
            .iter()
            .map(|v| v.x + v.w / 2.0)
            .fold(0.0, f64::max)
    }

    /// Ports: a box's outgoing edges leave from points spread along its bottom in the order of
    /// where they go, and incoming ones arrive spread along its top. By (link, vertex).
    fn ports(&self) -> (Ports, Ports) {
        let vertices = &self.vertices;
        let mut out_ports = Ports::new();
        let mut in_ports = Ports::new();
        for v in 0..vertices.len() {
            if vertices[v].dummy {
                continue;
            }
            let spread = |mut ends: Vec<(f64, usize)>, ports: &mut Ports| {
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
            let forward = || {
                self.chains
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !self.back[*k])
            };
            let outs: Vec<(f64, usize)> = forward()
                .filter(|(_, c)| c[0] == v)
                .map(|(k, c)| (vertices[c[1]].x, k))
                .collect();
            spread(outs, &mut out_ports);
            let ins: Vec<(f64, usize)> = forward()
                .filter(|(_, c)| c[c.len() - 1] == v)
                .map(|(k, c)| (vertices[c[c.len() - 2]].x, k))
                .collect();
            spread(ins, &mut in_ports);
        }
        (out_ports, in_ports)
    }

    /// The links as polylines: forward ones through their dummies, back ones up the right-hand
    /// side of `width`, one lane each. Returns them and the width with the lanes.
    pub fn route(&self, width: f64) -> (Vec<Vec<[f64; 2]>>, f64) {
        let (out_ports, in_ports) = self.ports();
        let mut routes = Vec::with_capacity(self.ends.len());
        let mut lane = 0usize;
        for (k, &(from, to)) in self.ends.iter().enumerate() {
            let chain = &self.chains[k];
            let (a, b) = (&self.vertices[from], &self.vertices[to]);
            let points = if self.back[k] {
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
                let out_x = out_ports.get(&(k, from)).copied().unwrap_or(a.x);
                let mut points = vec![[out_x, a.y + a.h]];
                for &d in &chain[1..chain.len() - 1] {
                    let dv = &self.vertices[d];
                    points.push([dv.x, dv.y]);
                    points.push([dv.x, dv.y + dv.h]);
                }
                let in_x = in_ports.get(&(k, to)).copied().unwrap_or(b.x);
                points.push([in_x, b.y]);
                points
            };
            routes.push(points);
        }
        (routes, width + LANE * lane as f64)
    }
}

/// Centres as close to `desired` as possible, in the given order, at least `NODE_GAP` apart:
/// the average of a left-to-right and a right-to-left greedy placement (both feasible, so their
/// average is too).
pub(crate) fn place(desired: &[f64], widths: &[f64]) -> Vec<f64> {
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
