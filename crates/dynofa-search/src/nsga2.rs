//! NSGA-II (Deb et al. 2002) over two objectives, accuracy ↑ and cost ↓: non-dominated
//! sorting, crowding distance, binary tournaments, crossover and mutation from the
//! [`Problem`]. Evaluations run in parallel (rayon); every random draw happens on the
//! calling thread, so a seed gives the same result on any number of threads.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The two objectives of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Objectives {
    /// To maximise (predicted accuracy).
    pub acc: f64,
    /// To minimise (latency, MFLOPs, …).
    pub cost: f64,
}

impl Objectives {
    /// `self` is at least as good in both objectives and better in one.
    pub fn dominates(&self, other: &Objectives) -> bool {
        self.acc >= other.acc && self.cost <= other.cost && (self.acc > other.acc || self.cost < other.cost)
    }
}

/// What NSGA-II searches over.
pub trait Problem: Sync {
    /// A candidate.
    type Genome: Clone + Send + Sync + Eq + std::hash::Hash;
    /// Error of an evaluation.
    type Error: Send;
    /// A uniformly random candidate.
    fn random(&self, rng: &mut ChaCha8Rng) -> Self::Genome;
    /// A mutated copy.
    fn mutate(&self, genome: &Self::Genome, rng: &mut ChaCha8Rng) -> Self::Genome;
    /// A child of two parents.
    fn crossover(&self, a: &Self::Genome, b: &Self::Genome, rng: &mut ChaCha8Rng) -> Self::Genome;
    /// Both objectives of a candidate.
    fn evaluate(&self, genome: &Self::Genome) -> Result<Objectives, Self::Error>;
    /// The candidates one step away (for the final local search; none by default).
    fn neighbours(&self, _genome: &Self::Genome) -> Vec<Self::Genome> {
        Vec::new()
    }
}

/// Settings of a run.
#[derive(Debug, Clone, Copy)]
pub struct Nsga2Options {
    /// Individuals per generation.
    pub population: usize,
    /// Generations.
    pub generations: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Rounds of Pareto local search on the final front: the neighbours of every front
    /// member not yet expanded are evaluated and the front updated, until no member is
    /// new or the rounds run out. Evolution spreads its population over the whole front;
    /// this sharpens it — the accurate end especially.
    pub polish_rounds: usize,
}

impl Default for Nsga2Options {
    fn default() -> Self {
        Nsga2Options { population: 100, generations: 100, seed: 0, polish_rounds: 50 }
    }
}

/// A candidate and its objectives.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated<G> {
    /// The candidate.
    pub genome: G,
    /// Its objectives.
    pub objectives: Objectives,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Nsga2Result<G> {
    /// Every candidate evaluated, in order.
    pub evaluated: Vec<Evaluated<G>>,
    /// The non-dominated candidates among all evaluated, by increasing cost.
    pub front: Vec<Evaluated<G>>,
}

/// Indices of `points` by non-dominated front (front 0 first).
pub fn non_dominated_fronts(points: &[Objectives]) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut dominated_by_count = vec![0usize; n];
    let mut dominates: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in 0..n {
            if points[i].dominates(&points[j]) {
                dominates[i].push(j);
            } else if points[j].dominates(&points[i]) {
                dominated_by_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates[i] {
                dominated_by_count[j] -= 1;
                if dominated_by_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        fronts.push(std::mem::replace(&mut current, next));
    }
    fronts
}

/// Crowding distance of each member of one front (∞ at the ends of each objective).
pub fn crowding_distances(points: &[Objectives], front: &[usize]) -> Vec<f64> {
    let mut distance = vec![0.0; front.len()];
    for objective in [|o: &Objectives| o.acc, |o: &Objectives| o.cost] {
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| objective(&points[front[a]]).total_cmp(&objective(&points[front[b]])));
        let (lo, hi) = (objective(&points[front[order[0]]]), objective(&points[front[*order.last().expect("non-empty")]]));
        distance[order[0]] = f64::INFINITY;
        distance[*order.last().expect("non-empty")] = f64::INFINITY;
        if hi > lo {
            for w in 1..order.len().saturating_sub(1) {
                distance[order[w]] += (objective(&points[front[order[w + 1]]]) - objective(&points[front[order[w - 1]]])) / (hi - lo);
            }
        }
    }
    distance
}

/// Runs NSGA-II; `progress(generation, generations)` after each generation.
pub fn nsga2<P: Problem>(problem: &P, options: Nsga2Options, progress: &mut dyn FnMut(usize, usize)) -> Result<Nsga2Result<P::Genome>, P::Error> {
    let n = options.population.max(2);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let evaluate_all = |genomes: Vec<P::Genome>| -> Result<Vec<Evaluated<P::Genome>>, P::Error> {
        genomes.into_par_iter().map(|genome| problem.evaluate(&genome).map(|objectives| Evaluated { genome, objectives })).collect()
    };
    let mut population = evaluate_all((0..n).map(|_| problem.random(&mut rng)).collect())?;
    let mut evaluated = population.clone();
    for generation in 0..options.generations {
        // Rank and crowding of the current population, for the tournaments.
        let points: Vec<Objectives> = population.iter().map(|e| e.objectives).collect();
        let (rank, crowding) = rank_and_crowding(&points);
        let better = |a: usize, b: usize| if rank[a] != rank[b] { rank[a] < rank[b] } else { crowding[a] > crowding[b] };
        let tournament = |rng: &mut ChaCha8Rng| {
            let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
            if better(a, b) { a } else { b }
        };
        let children: Vec<P::Genome> = (0..n)
            .map(|_| {
                let (a, b) = (tournament(&mut rng), tournament(&mut rng));
                let child = problem.crossover(&population[a].genome, &population[b].genome, &mut rng);
                problem.mutate(&child, &mut rng)
            })
            .collect();
        let children = evaluate_all(children)?;
        evaluated.extend(children.iter().cloned());
        // Survivors: best fronts of parents + children, the last one cut by crowding.
        let mut pool = population;
        pool.extend(children);
        let points: Vec<Objectives> = pool.iter().map(|e| e.objectives).collect();
        let mut survivors = Vec::with_capacity(n);
        for front in non_dominated_fronts(&points) {
            if survivors.len() + front.len() <= n {
                survivors.extend(front);
            } else {
                let distance = crowding_distances(&points, &front);
                let mut order: Vec<usize> = (0..front.len()).collect();
                order.sort_by(|&a, &b| distance[b].total_cmp(&distance[a]).then(a.cmp(&b)));
                survivors.extend(order.into_iter().take(n - survivors.len()).map(|i| front[i]));
                break;
            }
        }
        population = survivors.into_iter().map(|i| pool[i].clone()).collect();
        progress(generation + 1, options.generations);
    }
    let mut front = pareto_front(&evaluated);
    let mut expanded: std::collections::HashSet<P::Genome> = std::collections::HashSet::new();
    let mut seen: std::collections::HashSet<P::Genome> = evaluated.iter().map(|e| e.genome.clone()).collect();
    for _ in 0..options.polish_rounds {
        let fresh: Vec<P::Genome> = front.iter().map(|e| e.genome.clone()).filter(|g| expanded.insert(g.clone())).collect();
        if fresh.is_empty() {
            break;
        }
        let neighbours: Vec<P::Genome> = fresh.iter().flat_map(|g| problem.neighbours(g)).filter(|n| seen.insert(n.clone())).collect();
        evaluated.extend(evaluate_all(neighbours)?);
        front = pareto_front(&evaluated);
    }
    Ok(Nsga2Result { front, evaluated })
}

/// Front rank and crowding distance of every point.
fn rank_and_crowding(points: &[Objectives]) -> (Vec<usize>, Vec<f64>) {
    let (mut rank, mut crowding) = (vec![0; points.len()], vec![0.0; points.len()]);
    for (r, front) in non_dominated_fronts(points).into_iter().enumerate() {
        for (&i, d) in front.iter().zip(crowding_distances(points, &front)) {
            rank[i] = r;
            crowding[i] = d;
        }
    }
    (rank, crowding)
}

/// The non-dominated members of `all` (one per distinct objective pair), by increasing cost.
pub fn pareto_front<G: Clone>(all: &[Evaluated<G>]) -> Vec<Evaluated<G>> {
    let mut sorted: Vec<&Evaluated<G>> = all.iter().collect();
    // By cost ↑, then accuracy ↓: a point is on the front iff it beats every cheaper one.
    sorted.sort_by(|a, b| a.objectives.cost.total_cmp(&b.objectives.cost).then(b.objectives.acc.total_cmp(&a.objectives.acc)));
    let mut front: Vec<Evaluated<G>> = Vec::new();
    for e in sorted {
        if front.last().is_none_or(|last| e.objectives.acc > last.objectives.acc) {
            front.push(e.clone());
        }
    }
    front
}
