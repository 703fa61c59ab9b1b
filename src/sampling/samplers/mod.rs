//! The samplers of REFERENCE.md §6, one file each, behind one trait ([`SamplerDef`]) and one registry
//! ([`SAMPLERS`]).
//!
//! **Adding a sampler** takes a new file `src/sampling/samplers/<name>.rs` holding a unit struct that implements
//! [`SamplerDef`] (its names, label and help, its knobs, validation, tensor step, f64 particle step for the 2D Lab
//! and exact law on a Gaussian), plus one line in the `registry!` invocation below. Everything else reads the
//! registry: [`Sampler`] values and their JSON (`{"kind": name, ...}`), the CLI's `--sampler`, the app's sampler
//! combo boxes (with the gamma and u sliders shown only for an underdamped sampler), the 2D Lab's particles and its
//! stationary law (`lab::stationary`), and the tests that hold every registered sampler against its own exact law
//! (`tests/sampler_registry.rs`).
//!
//! A definition that is not registered still works everywhere a [`Sampler`] value is passed (build it with
//! [`SamplerKind::new`] and [`Sampler::new`]): only the look-ups by name (CLI, JSON, app) need the registry.
//!
//! The helpers below ([`score_beside_noise`], [`normals_like`], [`lincomb`], [`join`], [`positive`],
//! [`validate_underdamped`], [`mat2_mul`]) are what the registered samplers are built from.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use candle_core::Tensor;

use super::{Error, Result};
use crate::rng::Rng;

pub use super::fused::lincomb;
pub use super::langevin::Sampler;

/// Declares the sampler files and the registry: one `file::Type` per sampler, in the order of the app's combo boxes
/// and the CLI's help.
macro_rules! registry {
    ($($file:ident :: $def:ident),+ $(,)?) => {
        $(
            pub mod $file;
            pub use $file::$def;
        )+
        /// Every registered sampler, in the order of the app's combo boxes and the CLI's help.
        pub static SAMPLERS: &[&dyn SamplerDef] = &[$(&$def),+];
    };
}

registry! {
    overdamped::Overdamped,
    sachs::Sachs,
    cheng::Cheng,
}

/// A sampler's parameters: step `delta`, friction `gamma` (a rate: the per-step friction is `gamma * delta`),
/// inverse mass `u`. A sampler that is not [underdamped](SamplerDef::underdamped) reads `delta` only (the other two
/// are NaN in the values [`Sampler`] hands it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Step size (project convention, REFERENCE.md §6).
    pub delta: f64,
    /// Friction rate.
    pub gamma: f64,
    /// Inverse mass.
    pub u: f64,
}

/// The score of one tensor step, `y [N, D] -> psi [N, D]`. A step calls it exactly once (every sampler of §6 takes
/// one score per step), from whichever thread it likes.
pub type Score<'a> = Box<dyn FnOnce(&Tensor) -> Result<Tensor> + Send + 'a>;

/// The 2D Lab's particles for one f64 step: positions `y [n][2]`, velocities `v [n][2]` (kept at zero by a sampler
/// without velocity) and which particles still walk, `alive [n]`. A step leaves the stopped particles untouched and
/// draws no noise for them.
pub struct Particles<'a> {
    /// Positions.
    pub y: &'a mut [[f64; 2]],
    /// Velocities.
    pub v: &'a mut [[f64; 2]],
    /// Whether each particle still walks.
    pub alive: &'a [bool],
}

/// A 2x2 matrix, row-major.
pub type Mat2 = [[f64; 2]; 2];

/// `a b` for 2x2 matrices.
pub fn mat2_mul(a: Mat2, b: Mat2) -> Mat2 {
    let mut r = [[0.0; 2]; 2];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = a[i][0] * b[0][j] + a[i][1] * b[1][j];
        }
    }
    r
}

/// Everything about one sampler. Implemented by a unit struct in the sampler's own file and listed once in the
/// registry; see the module docs.
///
/// The noise of a step comes from `rng` only, in a fixed order, so that the same seed gives the same bytes.
pub trait SamplerDef: Send + Sync + 'static {
    /// Its name: the CLI's `--sampler`, the `kind` of its JSON, the Walk-Jump views. Lower case, unique in the
    /// registry.
    fn name(&self) -> &'static str;

    /// Other names the CLI accepts for it (none unless overridden).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// Its entry in the app's sampler combo boxes.
    fn label(&self) -> &'static str;

    /// One line for the CLI's help and the app's hover text: the algorithm and its knobs.
    fn help(&self) -> &'static str;

    /// Whether it carries a velocity `v` and takes the friction `gamma` and inverse mass `u` besides `delta`.
    fn underdamped(&self) -> bool;

    /// Refuses parameters it cannot step with (NaN, infinite, non-positive ...), with a message naming the
    /// parameter.
    fn validate(&self, p: Params) -> Result<()>;

    /// One step from `y, v: [N, D]`: returns the new `(y, v)`, both `[N, D]` (a sampler without velocity returns
    /// `v` unchanged), and the score `psi [N, D]` at the point where it was taken. Its Gaussian noise comes from
    /// `rng` (drawn beside the score where possible, see [`score_beside_noise`]); `score` is called once.
    fn step(
        &self,
        p: Params,
        y: &Tensor,
        v: &Tensor,
        rng: &mut Rng,
        score: Score<'_>,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    /// One step of the 2D Lab's live particles in plain f64, on the exact score `score: y [2] -> psi [2]`, drawing
    /// `rng`'s normals particle by particle, coordinate by coordinate.
    fn step_particles(
        &self,
        p: Params,
        particles: Particles<'_>,
        rng: &mut Rng,
        score: &dyn Fn([f64; 2]) -> [f64; 2],
    );

    /// Its exact one-step law on the Gaussian score `psi(y) = -k y`, per coordinate: `(A, Q)` with
    /// `(y', v') = A (y, v) + xi`, `xi ~ N(0, Q)` (for a sampler without velocity the `v` row and column are zero),
    /// written from the algorithm's text independently of the steps above, so that tests can hold one against the
    /// other (`lab::stationary`). `None` when there is none in closed form.
    fn gaussian_transition(&self, p: Params, k: f64) -> Option<(Mat2, Mat2)>;
}

/// A sampler of the registry (or any other [`SamplerDef`]): a copyable handle that compares by name. Derefs to the
/// definition, so `kind.name()`, `kind.label()`, `kind.underdamped()` read it.
///
/// As a value of its own (the app's settings) it serializes as its name and reads back any registered name or
/// alias, in any case (settings written before the registry hold `"Overdamped"`, `"Sachs"`, `"Cheng"`).
#[derive(Clone, Copy)]
pub struct SamplerKind(&'static dyn SamplerDef);

impl SamplerKind {
    /// The handle of `def` (registered or not).
    pub const fn new(def: &'static dyn SamplerDef) -> Self {
        Self(def)
    }

    /// The definition.
    pub fn def(self) -> &'static dyn SamplerDef {
        self.0
    }

    /// Every registered sampler, in registry order.
    pub fn all() -> impl ExactSizeIterator<Item = SamplerKind> {
        SAMPLERS.iter().map(|&d| SamplerKind(d))
    }

    /// The registered sampler with this name or alias (exactly as written: the CLI's rule).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::all().find(|k| k.name() == name || k.aliases().contains(&name))
    }

    /// The registered sampler with this name or alias, ignoring case and surrounding blanks (the settings' rule).
    pub fn from_name_loose(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::all().find(|k| {
            k.name().eq_ignore_ascii_case(name)
                || k.aliases().iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }
}

impl Deref for SamplerKind {
    type Target = dyn SamplerDef;

    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for SamplerKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for SamplerKind {}

impl fmt::Debug for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SamplerKind").field(&self.name()).finish()
    }
}

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for SamplerKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for SamplerKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Loose;
        impl serde::de::Visitor<'_> for Loose {
            type Value = SamplerKind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sampler name")
            }

            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<SamplerKind, E> {
                SamplerKind::from_name_loose(v).ok_or_else(|| E::unknown_variant(v, names()))
            }
        }
        d.deserialize_str(Loose)
    }
}

/// The registered names, in registry order.
pub fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| SAMPLERS.iter().map(|d| d.name()).collect())
}

/// The registered names and aliases for a help or error line: `overdamped, sachs, cheng (also ula, alg1, alg2)`.
pub fn names_line() -> String {
    let aliases: Vec<&str> = SAMPLERS
        .iter()
        .flat_map(|d| d.aliases().iter().copied())
        .collect();
    let mut line = names().join(", ");
    if !aliases.is_empty() {
        line.push_str(&format!(" (also {})", aliases.join(", ")));
    }
    line
}

/// `Ok` for a finite positive `v`, else the error naming `name`.
pub fn positive(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::Param(format!(
            "{name} must be a positive number, got {v}"
        )))
    }
}

/// The checks of an underdamped sampler: `delta`, `gamma` and `u` positive, and `exp(-gamma delta)` representable.
pub fn validate_underdamped(p: Params) -> Result<()> {
    positive("delta", p.delta)?;
    positive("gamma", p.gamma)?;
    positive("u", p.u)?;
    if (p.gamma * p.delta) > 700.0 {
        return Err(Error::Param(format!(
            "gamma * delta = {} is too large (exp(-gamma delta) underflows)",
            p.gamma * p.delta
        )));
    }
    Ok(())
}

/// Standard normals of `like`'s shape, dtype and device, exactly those of `rng.normal_vec(like.elem_count())`.
pub fn normals_like(rng: &mut Rng, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        rng.normal_vec(like.elem_count()),
        like.shape(),
        like.device(),
    )?
    .to_dtype(like.dtype())?)
}

/// Fewer normals than this are drawn as one job beside the score: for a batch of one 28x28 image, splitting them
/// cost more than it saved (0.040 -> 0.048 ms per step of a small MLP).
const SPLIT_NOISE_MIN: usize = 8192;

/// `(score(at), eps)` with `eps` standard normals of `like`'s shape, exactly those of `rng.normal_vec`, drawn in two
/// halves: this thread draws the first before scoring while another takes the second, so that the other thread
/// is free again for the score's second row block when this one starts the first (with the noise as one job beside
/// the score, the thread that drew it finished its row block late: 0.60 instead of 0.43 ms for a small MLP's score
/// at 64 chains).
pub fn score_beside_noise<T: Send>(
    at: &Tensor,
    like: &Tensor,
    rng: &mut Rng,
    score: impl FnOnce(&Tensor) -> Result<T> + Send,
) -> Result<(T, Tensor)> {
    if like.elem_count() < SPLIT_NOISE_MIN {
        let (scored, eps) = join(|| score(at), || normals_like(rng, like));
        return Ok((scored?, eps?));
    }
    let parts = rng.split_normals(like.elem_count());
    let ((first, scored), second) = join(
        || {
            let first = parts.first();
            (first, score(at))
        },
        || parts.second(),
    );
    let scored = scored?;
    let eps = Tensor::from_vec(rng.join_normals(first, second), like.shape(), like.device())?
        .to_dtype(like.dtype())?;
    Ok((scored, eps))
}

/// `(a(), b())`, on two rayon threads when there are several, else one after the other on this thread (handing
/// the pair to a one-thread pool and waiting for it cost 4-5% of a 1-thread MLP step).
pub fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if rayon::current_num_threads() > 1 {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique_and_lower_case() {
        let mut seen = std::collections::BTreeSet::new();
        for k in SamplerKind::all() {
            for n in std::iter::once(k.name()).chain(k.aliases().iter().copied()) {
                assert_eq!(n, n.to_ascii_lowercase(), "{n}");
                assert!(!n.trim().is_empty() && n.trim() == n, "{n:?}");
                assert!(seen.insert(n), "{n} is registered twice");
            }
            assert!(
                !k.label().is_empty() && !k.help().is_empty(),
                "{}",
                k.name()
            );
            assert_eq!(SamplerKind::from_name(k.name()), Some(k));
            for a in k.aliases() {
                assert_eq!(SamplerKind::from_name(a), Some(k));
            }
        }
        assert_eq!(names(), ["overdamped", "sachs", "cheng"]);
        assert_eq!(
            names_line(),
            "overdamped, sachs, cheng (also ula, alg1, alg2)"
        );
    }

    #[test]
    fn loose_names_accept_case_and_blanks_strict_names_do_not() {
        assert_eq!(
            SamplerKind::from_name_loose(" Sachs "),
            SamplerKind::from_name("sachs")
        );
        assert_eq!(
            SamplerKind::from_name_loose("ALG2"),
            SamplerKind::from_name("cheng")
        );
        assert_eq!(SamplerKind::from_name("Sachs"), None);
        assert_eq!(SamplerKind::from_name_loose("hmc"), None);
    }
}
