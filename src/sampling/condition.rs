//! Conditional walk-jump (REFERENCE.md §11): chains that hold chosen data coordinates fixed while they sample the
//! rest, and chains seeded from chosen images.
//!
//! Split the data coordinates into held `o` and free `u`. The walk targets `p(y_u | y_o)`, whose score is the `u`
//! block of the full score at `y = (y_o, y_u)` (the normaliser `p(y_o)` does not depend on `y_u`), so any model's
//! score serves. The held noisy values are `y_o = x_o + sigma eps`, drawn **once** per chain (and per measurement for
//! M > 1: the mask repeats over the M measurements) and kept for the whole run, so the chain targets one fixed
//! density; re-drawing `y_o` every step would not. After every sampler step the held coordinates of `y` are put back
//! to `y_o` and their velocities to zero. For every sampler of REFERENCE.md §6 the update of a free coordinate
//! depends only on its own position, velocity, noise and score, so this is exactly the sampler run on the
//! conditional density. Each jump is `x_hat(y)` on the full `y`, with the held pixels then set to `x_o` exactly.

use candle_core::{DType, Device, Tensor};

use crate::rng::Rng;
use crate::sampling::{Error, Result};

/// What the held coordinates are held at.
#[derive(Clone, Debug, PartialEq)]
pub enum Held {
    /// Clean images `x_o: [N * d]` (one per chain): `y_o = x_o + sigma eps` is drawn once when the chains start,
    /// and every jump returns `x_o` on the held pixels.
    Clean(Vec<f32>),
    /// Noisy values `y_o: [N * M * d]` given directly (the exact conditional `p(y_u | y_o)` of a known density,
    /// for tests and teaching); jumps are left as the model gives them.
    Noisy(Vec<f32>),
}

/// A per-chain mask over the data coordinates, what the held ones are held at, and whether the free coordinates
/// start from images instead of the run's init.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    chains: usize,
    data_dim: usize,
    /// `[N * d]`, 1 where held.
    mask: Vec<u8>,
    held: Held,
    /// Clean images `[N * d]` the chains start from (`y0 = x + sigma eps` on every coordinate), if any.
    start: Option<Vec<f32>>,
}

impl Condition {
    /// Chains `i = 0..chains` hold the pixels where `mask[i * d + j]` is true at the clean values `x_o[i * d + j]`.
    /// `mask` and `x_o` may also have length `d` (one mask or image shared by every chain).
    pub fn clean(chains: usize, data_dim: usize, mask: &[bool], x_o: &[f32]) -> Result<Self> {
        let mask = per_chain(chains, data_dim, mask, "mask")?;
        let x_o = per_chain(chains, data_dim, x_o, "observed image")?;
        if x_o.iter().any(|v| !v.is_finite()) {
            return Err(Error::Param(
                "the observed image has non-finite pixels".into(),
            ));
        }
        Ok(Self {
            chains,
            data_dim,
            mask: mask.into_iter().map(u8::from).collect(),
            held: Held::Clean(x_o),
            start: None,
        })
    }

    /// Chains hold the coordinates of `y` where `mask` (`[N * d]` or `[d]`, repeated over the M measurements) is
    /// true at the noisy values `y_o` (`[N * M * d]` or `[M * d]`).
    pub fn noisy(
        chains: usize,
        measurements: usize,
        data_dim: usize,
        mask: &[bool],
        y_o: &[f32],
    ) -> Result<Self> {
        let mask = per_chain(chains, data_dim, mask, "mask")?;
        let y_o = per_chain(chains, measurements * data_dim, y_o, "held values")?;
        if y_o.iter().any(|v| !v.is_finite()) {
            return Err(Error::Param("the held values are not all finite".into()));
        }
        Ok(Self {
            chains,
            data_dim,
            mask: mask.into_iter().map(u8::from).collect(),
            held: Held::Noisy(y_o),
            start: None,
        })
    }

    /// Chains that start from clean images `x: [N * d]` (or one image `[d]` for all) plus noise, holding nothing.
    pub fn seeded(chains: usize, data_dim: usize, x: &[f32]) -> Result<Self> {
        let x = per_chain(chains, data_dim, x, "start image")?;
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::Param("the start image has non-finite pixels".into()));
        }
        Ok(Self {
            chains,
            data_dim,
            mask: vec![0; chains * data_dim],
            held: Held::Clean(x.clone()),
            start: Some(x),
        })
    }

    /// The same condition, with the free coordinates also starting from the observed images plus noise.
    pub fn starting_from_images(mut self) -> Self {
        if let Held::Clean(x) = &self.held {
            self.start = Some(x.clone());
        }
        self
    }

    /// Number of chains N.
    pub fn chains(&self) -> usize {
        self.chains
    }

    /// Dimension d of one clean sample.
    pub fn data_dim(&self) -> usize {
        self.data_dim
    }

    /// The mask `[N * d]` (1 where held).
    pub fn mask(&self) -> &[u8] {
        &self.mask
    }

    /// The clean observations `[N * d]`, when held at clean values.
    pub fn observed(&self) -> Option<&[f32]> {
        match &self.held {
            Held::Clean(x) => Some(x),
            Held::Noisy(_) => None,
        }
    }

    /// Number of held pixels over all chains.
    pub fn held_count(&self) -> usize {
        self.mask.iter().filter(|&&m| m != 0).count()
    }

    /// Checks the condition against a run of `chains` chains of a model with `data_dim` pixels.
    pub fn check(&self, chains: usize, data_dim: usize) -> Result<()> {
        if self.data_dim != data_dim {
            return Err(Error::Data(format!(
                "the condition's images have {} pixels but the model takes {data_dim}",
                self.data_dim
            )));
        }
        if self.chains != chains {
            return Err(Error::Param(format!(
                "the condition is for {} chains but the run has {chains}",
                self.chains
            )));
        }
        Ok(())
    }

    /// The chains' start `y0: [N * M * d]`: `init_y` (the run's init) on free coordinates or, when seeded from
    /// images, `x + sigma eps` there; the held values on held coordinates. Also returns the held state the chain
    /// keeps. Noise comes from `rng` (its own stream, so the unconditioned part of the run is unchanged).
    pub(crate) fn start_state(
        &self,
        mut init_y: Vec<f32>,
        measurements: usize,
        sigma: f64,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<(Vec<f32>, HeldState)> {
        let (n, d, m) = (self.chains, self.data_dim, measurements);
        if init_y.len() != n * m * d {
            return Err(Error::Param(format!(
                "the start state has {} values, expected {}",
                init_y.len(),
                n * m * d
            )));
        }
        if let Some(x) = &self.start {
            for i in 0..n {
                for k in 0..m {
                    for j in 0..d {
                        init_y[(i * m + k) * d + j] =
                            (x[i * d + j] as f64 + sigma * rng.normal()) as f32;
                    }
                }
            }
        }
        let y_o: Vec<f32> = match &self.held {
            Held::Noisy(y) => y.clone(),
            Held::Clean(x) => {
                let mut y = vec![0f32; n * m * d];
                for i in 0..n {
                    for k in 0..m {
                        for j in 0..d {
                            if self.mask[i * d + j] != 0 {
                                y[(i * m + k) * d + j] =
                                    (x[i * d + j] as f64 + sigma * rng.normal()) as f32;
                            }
                        }
                    }
                }
                y
            }
        };
        let mut mask_y = vec![0u8; n * m * d];
        for i in 0..n {
            for k in 0..m {
                let row = &mut mask_y[(i * m + k) * d..(i * m + k + 1) * d];
                row.copy_from_slice(&self.mask[i * d..(i + 1) * d]);
            }
        }
        for (v, (&h, &o)) in init_y.iter_mut().zip(mask_y.iter().zip(&y_o)) {
            if h != 0 {
                *v = o;
            }
        }
        let any = self.mask.iter().any(|&h| h != 0);
        let state = HeldState {
            active: any,
            mask_y: Tensor::from_vec(mask_y, (n, m * d), device)?,
            y_o: Tensor::from_vec(y_o, (n, m * d), device)?,
            zeros: Tensor::zeros((n, m * d), DType::F32, device)?,
            jump: match &self.held {
                Held::Clean(x) if any => Some((
                    Tensor::from_vec(self.mask.clone(), (n, d), device)?,
                    Tensor::from_vec(x.clone(), (n, d), device)?,
                )),
                _ => None,
            },
        };
        Ok((init_y, state))
    }
}

/// The tensors a conditioned chain keeps: the held mask over y, the held values, and what jumps are set to.
#[derive(Debug, Clone)]
pub(crate) struct HeldState {
    /// Whether any coordinate is held (a chain only seeded from images holds none).
    active: bool,
    /// `[N, M*d]` u8, 1 where held.
    mask_y: Tensor,
    /// `[N, M*d]` the held noisy values (zero where free).
    y_o: Tensor,
    /// `[N, M*d]` zeros (the held velocities).
    zeros: Tensor,
    /// `([N, d]` mask, `[N, d]` clean observation`)` for the jumps, when held at clean values.
    jump: Option<(Tensor, Tensor)>,
}

impl HeldState {
    /// Puts the held coordinates of `y` back to `y_o` and their velocities `v` to zero.
    pub(crate) fn apply(&self, y: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        if !self.active {
            return Ok((y, v));
        }
        Ok((
            self.mask_y.where_cond(&self.y_o, &y)?,
            self.mask_y.where_cond(&self.zeros, &v)?,
        ))
    }

    /// The number of free (walking) coordinates of each chain, `[N]`, or `None` when nothing is held.
    pub(crate) fn free_counts(&self) -> Result<Option<Vec<f64>>> {
        if !self.active {
            return Ok(None);
        }
        let dim = self.mask_y.dim(1)? as f64;
        let held = self
            .mask_y
            .to_dtype(candle_core::DType::F32)?
            .sum(1)?
            .to_vec1::<f32>()?;
        Ok(Some(held.iter().map(|&h| dim - h as f64).collect()))
    }

    /// Sets the held pixels of jumps `x: [N, d]` to the clean observation.
    pub(crate) fn apply_jump(&self, x: Tensor) -> Result<Tensor> {
        match &self.jump {
            Some((mask, x_o)) => Ok(mask.where_cond(x_o, &x)?),
            None => Ok(x),
        }
    }
}

/// `v` repeated for `chains` chains when it has length `width`, or `v` itself when it has `chains * width`.
fn per_chain<T: Copy>(chains: usize, width: usize, v: &[T], what: &str) -> Result<Vec<T>> {
    if chains == 0 || width == 0 {
        return Err(Error::Param(format!(
            "a {what} for {chains} chains of {width} values is empty"
        )));
    }
    if v.len() == chains * width {
        Ok(v.to_vec())
    } else if v.len() == width {
        Ok(v.iter().copied().cycle().take(chains * width).collect())
    } else {
        Err(Error::Param(format!(
            "the {what} has {} values; expected {width} (shared) or {} ({chains} chains x {width})",
            v.len(),
            chains * width
        )))
    }
}

/// A named held region of an `h x w` image (`c` channels share it): `[c * h * w]`, true where held.
///
/// `top`, `bottom`, `left`, `right` hold that half; `centre` (or `center`) a centred square of half the smaller
/// side; `random:P` a share `P` of the pixels chosen with `seed` (the same pixel in every channel); `all` and `none`.
pub fn named_mask(spec: &str, c: usize, h: usize, w: usize, seed: u64) -> Result<Vec<bool>> {
    let plane: Vec<bool> = match spec.trim() {
        "top" => (0..h * w).map(|p| p / w < h / 2).collect(),
        "bottom" => (0..h * w).map(|p| p / w >= h - h / 2).collect(),
        "left" => (0..h * w).map(|p| p % w < w / 2).collect(),
        "right" => (0..h * w).map(|p| p % w >= w - w / 2).collect(),
        "centre" | "center" => {
            let s = h.min(w) / 2;
            let (r0, c0) = ((h - s) / 2, (w - s) / 2);
            (0..h * w)
                .map(|p| {
                    let (r, col) = (p / w, p % w);
                    (r0..r0 + s).contains(&r) && (c0..c0 + s).contains(&col)
                })
                .collect()
        }
        "all" => vec![true; h * w],
        "none" => vec![false; h * w],
        other => {
            let Some(p) = other.strip_prefix("random:") else {
                return Err(Error::Param(format!(
                    "unknown mask '{other}': use top, bottom, left, right, centre, random:P, all, none or a PNG"
                )));
            };
            let share: f64 = p.trim().parse().map_err(|_| {
                Error::Param(format!("random:P needs a share P in [0, 1], got '{p}'"))
            })?;
            if !(0.0..=1.0).contains(&share) {
                return Err(Error::Param(format!(
                    "random:P needs a share P in [0, 1], got {share}"
                )));
            }
            let mut rng = Rng::new(seed ^ 0x6d61_736b);
            (0..h * w).map(|_| rng.uniform() < share).collect()
        }
    };
    Ok(plane.iter().copied().cycle().take(c * h * w).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_masks_cover_the_right_pixels() {
        let top = named_mask("top", 1, 28, 28, 0).expect("top");
        assert_eq!(top.iter().filter(|&&b| b).count(), 14 * 28);
        assert!(top[0] && !top[27 * 28]);
        let bottom = named_mask("bottom", 1, 5, 4, 0).expect("bottom");
        // An odd height: the halves do not overlap (2 rows each) and the middle row is free.
        assert_eq!(bottom.iter().filter(|&&b| b).count(), 2 * 4);
        assert!(bottom[4 * 4] && !bottom[2 * 4]);
        let left = named_mask("left", 1, 28, 28, 0).expect("left");
        assert!(left[0] && !left[27]);
        let right = named_mask("right", 1, 28, 28, 0).expect("right");
        assert!(right.iter().zip(&left).all(|(a, b)| a != b));
        let centre = named_mask("centre", 1, 28, 28, 0).expect("centre");
        assert_eq!(centre.iter().filter(|&&b| b).count(), 14 * 14);
        assert!(centre[14 * 28 + 14] && !centre[0]);
        let colour = named_mask("top", 3, 4, 4, 0).expect("colour");
        assert_eq!(colour.len(), 48);
        assert_eq!(&colour[..16], &colour[16..32]);
        // A random share: binomial(784, 0.3) has standard deviation 12.8; 5 of them is far outside chance.
        let r = named_mask("random:0.3", 1, 28, 28, 7).expect("random");
        let k = r.iter().filter(|&&b| b).count() as f64;
        assert!((k - 0.3 * 784.0).abs() < 5.0 * 12.83, "{k}");
        assert_eq!(r, named_mask("random:0.3", 1, 28, 28, 7).expect("again"));
        assert_ne!(
            r,
            named_mask("random:0.3", 1, 28, 28, 8).expect("other seed")
        );
        for bad in ["random:1.5", "random:x", "middle", "random:"] {
            assert!(named_mask(bad, 1, 28, 28, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_check_their_sizes() {
        assert!(Condition::clean(3, 4, &[true; 4], &[0.5; 4]).is_ok());
        assert!(Condition::clean(3, 4, &[true; 12], &[0.5; 12]).is_ok());
        assert!(Condition::clean(3, 4, &[true; 5], &[0.5; 4]).is_err());
        assert!(Condition::clean(3, 4, &[true; 4], &[f32::NAN; 4]).is_err());
        assert!(Condition::noisy(2, 2, 3, &[true; 3], &[0.0; 6]).is_ok());
        assert!(Condition::noisy(2, 2, 3, &[true; 3], &[0.0; 3]).is_err());
        let c = Condition::clean(2, 4, &[true, false, true, false], &[1.0; 4]).expect("c");
        assert_eq!(c.held_count(), 4);
        assert!(c.check(2, 4).is_ok());
        assert!(c.check(3, 4).is_err());
        assert!(c.check(2, 5).is_err());
    }
}
