//! Langevin particles in the plane: the samplers of REFERENCE.md §6 in plain f64 on an exact [`Field2`] (each
//! sampler's `SamplerDef::step_particles`, in its file under `sampling/samplers`), their jumps, trails, and
//! histograms against the exact density.
//!
//! Each particle is an independent chain `(y, v)`; all draw their noise from one seeded [`Rng`] in a fixed order
//! (step by step, particle by particle, coordinate by coordinate), so the state after `n` steps depends only on the
//! configuration and the seed, never on how the steps were split across frames. Two sets built with the same seed
//! start from the same points and see the same noise (common random numbers for A/B comparisons).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::sampling::langevin::Sampler;
use crate::sampling::samplers::Particles;

use super::LabError;
use super::field::Field2;

/// The most particles one set may hold.
pub const MAX_PARTICLES: usize = 100_000;

/// A particle beyond this distance from the origin (or non-finite) has diverged and stops.
pub const DIVERGED_RADIUS: f64 = 1e6;

/// Where the particles start (`v0 = 0` always).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticleInit {
    /// Uniform over the view box: the walk has to find the density.
    Uniform,
    /// Exact draws of `y`: the particles start at the target law, so only the sampler's bias moves them off it.
    Exact,
}

/// Everything that determines a particle run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticleConfig {
    /// Number of particles, `1..=MAX_PARTICLES`.
    pub n: usize,
    /// Seed of the run.
    pub seed: u64,
    /// The walk and its parameters.
    pub sampler: Sampler,
    /// Starting points.
    pub init: ParticleInit,
    /// The box `[xmin, xmax, ymin, ymax]` for [`ParticleInit::Uniform`].
    pub bounds: [f64; 4],
    /// How many particles keep a trail (the first ones).
    pub trails: usize,
    /// How many past positions a trail keeps.
    pub trail_len: usize,
}

/// A 2D histogram of the particles against the exact bin probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct TvReport {
    /// Total variation distance `(1/2) sum_b |p_hat_b - p_b|` over the bins and the outside of the box.
    pub tv: f64,
    /// The TV expected from sampling noise alone with this many independent exact draws,
    /// `(1/2) sum_b sqrt(2 p_b (1 - p_b) / (pi n))`: a TV well above it is the sampler's bias.
    pub noise_floor: f64,
    /// Particles counted (the live ones).
    pub n: usize,
}

/// A set of particles walking on a field; see the module docs.
#[derive(Clone, Debug)]
pub struct ParticleSet {
    sampler: Sampler,
    y: Vec<[f64; 2]>,
    v: Vec<[f64; 2]>,
    alive: Vec<bool>,
    rng: Rng,
    steps: u64,
    trails: Vec<VecDeque<[f64; 2]>>,
    trail_len: usize,
    diverged: usize,
}

fn sampler_error(e: crate::sampling::Error) -> LabError {
    LabError::Param {
        name: "sampler",
        reason: e.to_string(),
    }
}

impl ParticleSet {
    /// Starts `config.n` particles on `field`.
    pub fn new(config: &ParticleConfig, field: &Field2) -> Result<Self, LabError> {
        config.sampler.validate().map_err(sampler_error)?;
        if config.n == 0 || config.n > MAX_PARTICLES {
            return Err(LabError::Param {
                name: "particles",
                reason: format!("{} is not in 1..={MAX_PARTICLES}", config.n),
            });
        }
        let [x0, x1, y0, y1] = config.bounds;
        if !(x0.is_finite() && x1.is_finite() && y0.is_finite() && y1.is_finite()) {
            return Err(LabError::Param {
                name: "bounds",
                reason: "must be finite".into(),
            });
        }
        let mut rng = Rng::new(config.seed);
        let y: Vec<[f64; 2]> = match config.init {
            ParticleInit::Uniform => (0..config.n)
                .map(|_| {
                    let a = rng.uniform();
                    let b = rng.uniform();
                    [x0 + (x1 - x0) * a, y0 + (y1 - y0) * b]
                })
                .collect(),
            ParticleInit::Exact => field.sample(&mut rng, config.n),
        };
        let trails = y
            .iter()
            .take(config.trails)
            .map(|&p| VecDeque::from([p]))
            .collect();
        Ok(Self {
            sampler: config.sampler,
            v: vec![[0.0; 2]; y.len()],
            alive: vec![true; y.len()],
            y,
            rng,
            steps: 0,
            trails,
            trail_len: config.trail_len.max(1),
            diverged: 0,
        })
    }

    /// Changes the walk for the next steps (the state is kept; an overdamped chain ignores `v`, and a switch to an
    /// underdamped one starts from the current velocities).
    pub fn set_sampler(&mut self, sampler: Sampler) -> Result<(), LabError> {
        sampler.validate().map_err(sampler_error)?;
        self.sampler = sampler;
        Ok(())
    }

    /// The walk in use.
    pub fn sampler(&self) -> Sampler {
        self.sampler
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Number of particles (live or not).
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether the set is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Particles that diverged and stopped.
    pub fn diverged(&self) -> usize {
        self.diverged
    }

    /// Positions `y`, `[n][2]` (a diverged particle keeps the far or non-finite position where it was stopped).
    pub fn positions(&self) -> &[[f64; 2]] {
        &self.y
    }

    /// Velocities `v`, `[n][2]` (zero for the overdamped walk).
    pub fn velocities(&self) -> &[[f64; 2]] {
        &self.v
    }

    /// Positions of the live particles.
    pub fn live_positions(&self) -> impl Iterator<Item = [f64; 2]> + '_ {
        self.y
            .iter()
            .zip(&self.alive)
            .filter(|(_, a)| **a)
            .map(|(p, _)| *p)
    }

    /// Whether particle `i` is still walking.
    pub fn is_alive(&self, i: usize) -> bool {
        self.alive.get(i).copied().unwrap_or(false)
    }

    /// The trails of the first particles, oldest position first.
    pub fn trails(&self) -> &[VecDeque<[f64; 2]>] {
        &self.trails
    }

    /// Advances every live particle by `n` steps on `field`.
    pub fn step(&mut self, field: &Field2, n: usize) {
        for _ in 0..n {
            self.step_once(field);
        }
    }

    fn step_once(&mut self, field: &Field2) {
        let score = |y: [f64; 2]| field.log_density_and_score(y).1;
        self.sampler.kind().step_particles(
            self.sampler.params(),
            Particles {
                y: &mut self.y,
                v: &mut self.v,
                alive: &self.alive,
            },
            &mut self.rng,
            &score,
        );
        for (i, y) in self.y.iter().enumerate() {
            let r = y[0].hypot(y[1]);
            // r is NaN for a non-finite position: that too has diverged.
            if self.alive[i] && (r.is_nan() || r >= DIVERGED_RADIUS) {
                self.alive[i] = false;
                self.diverged += 1;
            }
        }
        for (i, t) in self.trails.iter_mut().enumerate() {
            if self.alive[i] {
                if t.len() >= self.trail_len {
                    t.pop_front();
                }
                t.push_back(self.y[i]);
            }
        }
        self.steps += 1;
    }

    /// `(y, x_hat(y))` for the first `limit` live particles (the jump written in the coordinates of `y`, see
    /// [`Field2::jump`]).
    pub fn jumps(&self, field: &Field2, limit: usize) -> Vec<([f64; 2], [f64; 2])> {
        self.live_positions()
            .take(limit)
            .map(|y| (y, field.jump(y)))
            .collect()
    }

    /// Density-normalised histogram of coordinate `axis` of the live particles over `bins` equal bins of
    /// `[lo, hi]`: `count_b / (n_live * width)` (particles outside the range count in `n_live` only), `[bins]`.
    pub fn marginal_histogram(&self, axis: usize, lo: f64, hi: f64, bins: usize) -> Vec<f64> {
        let bins = bins.max(1);
        let width = (hi - lo) / bins as f64;
        let mut counts = vec![0usize; bins];
        let mut n = 0usize;
        for p in self.live_positions() {
            n += 1;
            let t = (p[axis.min(1)] - lo) / width;
            if t >= 0.0 && t < bins as f64 {
                counts[t as usize] += 1;
            }
        }
        let norm = if n > 0 && width > 0.0 {
            1.0 / (n as f64 * width)
        } else {
            0.0
        };
        counts.into_iter().map(|c| c as f64 * norm).collect()
    }

    /// Mean `[2]` and covariance `[c00, c01, c11]` of the live particles.
    pub fn moments(&self) -> ([f64; 2], [f64; 3]) {
        let mut n = 0.0;
        let mut m = [0.0; 2];
        for p in self.live_positions() {
            n += 1.0;
            m[0] += p[0];
            m[1] += p[1];
        }
        if n < 2.0 {
            return (m, [0.0; 3]);
        }
        m = [m[0] / n, m[1] / n];
        let mut c = [0.0; 3];
        for p in self.live_positions() {
            let e = [p[0] - m[0], p[1] - m[1]];
            c[0] += e[0] * e[0];
            c[1] += e[0] * e[1];
            c[2] += e[1] * e[1];
        }
        (m, c.map(|x| x / (n - 1.0)))
    }

    /// The particles' 2D histogram (`bins x bins` over `bounds`, plus the outside) against the exact bin
    /// probabilities of `field` (midpoint rule on 4 x 4 sub-cells per bin).
    pub fn tv_distance(&self, field: &Field2, bounds: [f64; 4], bins: usize) -> TvReport {
        let bins = bins.max(1);
        let [x0, x1, y0, y1] = bounds;
        let (wx, wy) = ((x1 - x0) / bins as f64, (y1 - y0) / bins as f64);
        let mut counts = vec![0usize; bins * bins + 1];
        let mut n = 0usize;
        for p in self.live_positions() {
            n += 1;
            let (i, j) = ((p[0] - x0) / wx, (p[1] - y0) / wy);
            let idx = if i >= 0.0 && j >= 0.0 && i < bins as f64 && j < bins as f64 {
                j as usize * bins + i as usize
            } else {
                bins * bins
            };
            counts[idx] += 1;
        }
        let sub = 4;
        let cell = wx * wy / (sub * sub) as f64;
        let mut probs = vec![0.0; bins * bins + 1];
        for j in 0..bins {
            for i in 0..bins {
                let mut s = 0.0;
                for b in 0..sub {
                    for a in 0..sub {
                        let y = [
                            x0 + wx * (i as f64 + (a as f64 + 0.5) / sub as f64),
                            y0 + wy * (j as f64 + (b as f64 + 0.5) / sub as f64),
                        ];
                        s += field.density(y);
                    }
                }
                probs[j * bins + i] = s * cell;
            }
        }
        let inside: f64 = probs[..bins * bins].iter().sum();
        probs[bins * bins] = (1.0 - inside).max(0.0);
        let nf = n.max(1) as f64;
        let tv = 0.5
            * counts
                .iter()
                .zip(&probs)
                .map(|(&c, &p)| (c as f64 / nf - p).abs())
                .sum::<f64>();
        let noise_floor = 0.5
            * probs
                .iter()
                .map(|&p| (2.0 * p * (1.0 - p).max(0.0) / (std::f64::consts::PI * nf)).sqrt())
                .sum::<f64>();
        TvReport { tv, noise_floor, n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::GaussianMixture;

    fn config(sampler: Sampler, n: usize, seed: u64) -> ParticleConfig {
        ParticleConfig {
            n,
            seed,
            sampler,
            init: ParticleInit::Uniform,
            bounds: [-5.0, 5.0, -5.0, 5.0],
            trails: 3,
            trail_len: 10,
        }
    }

    #[test]
    fn same_seed_same_particles_however_the_steps_are_split() {
        let f = Field2::new(GaussianMixture::two_gaussians()).expect("field");
        let s = Sampler::cheng(0.3, 1.0, 1.0);
        let mut a = ParticleSet::new(&config(s, 50, 7), &f).expect("a");
        let mut b = ParticleSet::new(&config(s, 50, 7), &f).expect("b");
        a.step(&f, 10);
        for _ in 0..10 {
            b.step(&f, 1);
        }
        assert_eq!(a.positions(), b.positions());
        assert_eq!(a.trails()[0].len(), 10);
        assert_eq!(a.steps(), 10);
    }

    #[test]
    fn a_huge_step_stops_particles_instead_of_producing_nan() {
        let f = Field2::new(GaussianMixture::two_gaussians()).expect("field");
        let mut p = ParticleSet::new(&config(Sampler::overdamped(50.0), 20, 1), &f).expect("p");
        p.step(&f, 200);
        assert_eq!(p.diverged(), 20);
        assert_eq!(p.live_positions().count(), 0);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let f = Field2::new(GaussianMixture::two_gaussians()).expect("field");
        assert!(ParticleSet::new(&config(Sampler::overdamped(-1.0), 5, 0), &f).is_err());
        assert!(ParticleSet::new(&config(Sampler::overdamped(0.1), 0, 0), &f).is_err());
    }
}
