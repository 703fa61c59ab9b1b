//! The walk: a [`Sampler`] value (which sampler of the registry, and its parameters) and its step, the overdamped
//! and underdamped Langevin updates exactly as REFERENCE.md §6. The updates themselves live one file per sampler in
//! [`crate::sampling::samplers`].
//!
//! Every update works on a batch `y, v: [N, D]` and takes the score as a closure, so the same code drives the neural
//! models, the analytic mixtures, and the tests' Gaussian targets.

use std::fmt;

use candle_core::Tensor;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::sampling::samplers::{self, Params, SamplerKind};
use crate::sampling::{Error, Result};

pub use crate::sampling::samplers::cheng::{ChengCoefficients, cheng_coefficients};

/// A Langevin sampler and its parameters: step `delta`, friction `gamma` (a rate: the per-step friction is
/// `gamma * delta`), inverse mass `u`; `gamma` and `u` only for an underdamped sampler.
///
/// Build one with [`Sampler::from_name`] (validated), [`Sampler::new`], or the constructor in the sampler's file
/// ([`Sampler::overdamped`], [`Sampler::sachs`], [`Sampler::cheng`]). Its JSON is
/// `{"kind": name, "delta": .., "gamma": .., "u": ..}`, without `gamma` and `u` for a sampler without velocity.
/// Two samplers are equal when they are the same kind with equal parameters (the ones that kind uses).
#[derive(Clone, Copy)]
pub struct Sampler {
    kind: SamplerKind,
    delta: f64,
    gamma: f64,
    u: f64,
}

impl Sampler {
    /// `kind` with step `delta`, friction rate `gamma` and inverse mass `u` (the last two are dropped when `kind`
    /// is not underdamped). Not validated: see [`Sampler::validate`].
    pub fn new(kind: SamplerKind, delta: f64, gamma: f64, u: f64) -> Self {
        let (gamma, u) = if kind.underdamped() {
            (gamma, u)
        } else {
            (f64::NAN, f64::NAN)
        };
        Self {
            kind,
            delta,
            gamma,
            u,
        }
    }

    /// Builds a sampler from its CLI name or an alias, and validates it.
    pub fn from_name(name: &str, delta: f64, gamma: f64, u: f64) -> Result<Self> {
        let Some(kind) = SamplerKind::from_name(name) else {
            return Err(Error::Param(format!(
                "unknown sampler '{name}' ({})",
                samplers::names().join(", ")
            )));
        };
        let s = Sampler::new(kind, delta, gamma, u);
        s.validate()?;
        Ok(s)
    }

    /// Which sampler.
    pub fn kind(&self) -> SamplerKind {
        self.kind
    }

    /// CLI name of the kind.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Step size.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// Friction rate and inverse mass, for the underdamped kinds.
    pub fn gamma_u(&self) -> Option<(f64, f64)> {
        self.kind.underdamped().then_some((self.gamma, self.u))
    }

    /// The parameters as the sampler's definition reads them (`gamma` and `u` NaN for a kind without velocity).
    pub fn params(&self) -> Params {
        Params {
            delta: self.delta,
            gamma: self.gamma,
            u: self.u,
        }
    }

    /// The same kind with a new delta.
    pub fn with_delta(&self, delta: f64) -> Self {
        Self { delta, ..*self }
    }

    /// Refuses NaN, infinite, zero or negative parameters with a message naming the parameter.
    pub fn validate(&self) -> Result<()> {
        self.kind.validate(self.params())
    }

    /// Whether the sampler carries a velocity.
    pub fn is_underdamped(&self) -> bool {
        self.kind.underdamped()
    }

    /// One step from `(y, v)`; returns the new `(y, v)` and the score evaluation's output `E` (energy or other
    /// per-chain values the closure returns) at the point where the score was taken.
    /// `score: y [N, D] -> (E, psi [N, D])`.
    ///
    /// The step's Gaussian noise does not depend on the score, so it is drawn from `rng` on another rayon thread
    /// while `score` runs (same draws, same order: the result does not depend on the thread count).
    pub fn step<E: Send>(
        &self,
        y: &Tensor,
        v: &Tensor,
        rng: &mut Rng,
        score: impl FnOnce(&Tensor) -> Result<(E, Tensor)> + Send,
    ) -> Result<(Tensor, Tensor, E, Tensor)> {
        let mut taken = None;
        let slot = &mut taken;
        let (y1, v1, psi) = self.kind.step(
            self.params(),
            y,
            v,
            rng,
            Box::new(move |at: &Tensor| {
                let (e, psi) = score(at)?;
                *slot = Some(e);
                Ok(psi)
            }),
        )?;
        let e = taken.ok_or_else(|| {
            Error::Param(format!(
                "sampler '{}' finished a step without taking the score",
                self.name()
            ))
        })?;
        Ok((y1, v1, e, psi))
    }
}

impl PartialEq for Sampler {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.delta == other.delta && self.gamma_u() == other.gamma_u()
    }
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Sampler");
        d.field("kind", &self.name()).field("delta", &self.delta);
        if let Some((gamma, u)) = self.gamma_u() {
            d.field("gamma", &gamma).field("u", &u);
        }
        d.finish()
    }
}

impl Serialize for Sampler {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let friction = self.gamma_u();
        let mut st = s.serialize_struct("Sampler", if friction.is_some() { 4 } else { 2 })?;
        st.serialize_field("kind", self.name())?;
        st.serialize_field("delta", &self.delta)?;
        if let Some((gamma, u)) = friction {
            st.serialize_field("gamma", &gamma)?;
            st.serialize_field("u", &u)?;
        }
        st.end()
    }
}

/// Reads what `Serialize` writes, in any field order: `kind` must be a registered name exactly (no alias, as
/// ever), other fields are ignored, and `gamma` / `u` are read (and must be numbers) only for an underdamped kind.
impl<'de> Deserialize<'de> for Sampler {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(SamplerVisitor)
    }
}

struct SamplerVisitor;

impl<'de> Visitor<'de> for SamplerVisitor {
    type Value = Sampler;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("internally tagged enum Sampler")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Sampler, A::Error> {
        let mut kind: Option<SamplerKind> = None;
        // Each parameter's value, and whether it came twice (an error only if the kind reads it).
        let mut params: [(Option<Number>, bool); 3] = [(None, false), (None, false), (None, false)];
        while let Some(key) = map.next_key::<String>()? {
            let i = match key.as_str() {
                "kind" => {
                    if kind.is_some() {
                        return Err(de::Error::duplicate_field("kind"));
                    }
                    kind = Some(map.next_value::<KindName>()?.0);
                    continue;
                }
                "delta" => 0,
                "gamma" => 1,
                "u" => 2,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value = map.next_value::<Number>()?;
            let (slot, twice) = &mut params[i];
            *twice |= slot.is_some();
            *slot = Some(value);
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        let [delta, gamma, u] = params;
        let delta = param(delta, "delta")?;
        Ok(if kind.underdamped() {
            Sampler::new(kind, delta, param(gamma, "gamma")?, param(u, "u")?)
        } else {
            Sampler::new(kind, delta, f64::NAN, f64::NAN)
        })
    }
}

/// A parameter the kind reads: present once, and a number.
fn param<E: de::Error>(
    (value, twice): (Option<Number>, bool),
    name: &'static str,
) -> std::result::Result<f64, E> {
    if twice {
        return Err(E::duplicate_field(name));
    }
    match value {
        None => Err(E::missing_field(name)),
        Some(Number::Value(x)) => Ok(x),
        Some(Number::Not(what)) => Err(E::custom(format_args!(
            "invalid type: {what}, expected f64"
        ))),
    }
}

/// The `kind` of a sampler's JSON: a registered name, exactly.
struct KindName(SamplerKind);

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KindName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("variant identifier")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<KindName, E> {
                samplers::SAMPLERS
                    .iter()
                    .find(|d| d.name() == v)
                    .map(|&d| KindName(SamplerKind::new(d)))
                    .ok_or_else(|| E::unknown_variant(v, samplers::names()))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A parameter's JSON value: a number, or what it was instead (an error only if the kind reads it).
enum Number {
    Value(f64),
    Not(String),
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Number;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Number, E> {
                Ok(Number::Value(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Number, E> {
                Ok(Number::Value(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Number, E> {
                Ok(Number::Value(v as f64))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Number, E> {
                Ok(Number::Not(de::Unexpected::Bool(v).to_string()))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Number, E> {
                Ok(Number::Not(de::Unexpected::Str(v).to_string()))
            }

            fn visit_unit<E: de::Error>(self) -> std::result::Result<Number, E> {
                Ok(Number::Not("null".into()))
            }

            fn visit_none<E: de::Error>(self) -> std::result::Result<Number, E> {
                Ok(Number::Not("null".into()))
            }

            fn visit_some<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<Number, D::Error> {
                Number::deserialize(d)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Number, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Number::Not(de::Unexpected::Seq.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Number, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Number::Not(de::Unexpected::Map.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of every kind as the enum of old wrote it (captured from that code, these literal strings): the
    /// checkpoints' recommended samplers, run files and Lab configurations hold it.
    #[test]
    fn json_is_unchanged_and_old_json_reads_back() {
        let cases = [
            (
                Sampler::overdamped(std::f64::consts::SQRT_2 * 0.2),
                r#"{"kind":"overdamped","delta":0.28284271247461906}"#,
                "{\n  \"kind\": \"overdamped\",\n  \"delta\": 0.28284271247461906\n}",
            ),
            (
                Sampler::sachs(1.0, 0.25, 1.0),
                r#"{"kind":"sachs","delta":1.0,"gamma":0.25,"u":1.0}"#,
                "{\n  \"kind\": \"sachs\",\n  \"delta\": 1.0,\n  \"gamma\": 0.25,\n  \"u\": 1.0\n}",
            ),
            (
                Sampler::cheng(0.1234567890123, 2.5, 0.75),
                r#"{"kind":"cheng","delta":0.1234567890123,"gamma":2.5,"u":0.75}"#,
                "{\n  \"kind\": \"cheng\",\n  \"delta\": 0.1234567890123,\n  \"gamma\": 2.5,\n  \"u\": 0.75\n}",
            ),
        ];
        for (s, compact, pretty) in cases {
            assert_eq!(serde_json::to_string(&s).expect("json"), compact);
            assert_eq!(serde_json::to_string_pretty(&s).expect("json"), pretty);
            for text in [compact, pretty] {
                let back: Sampler = serde_json::from_str(text).expect("parse");
                assert_eq!(back, s);
                assert_eq!(back.delta().to_bits(), s.delta().to_bits());
            }
        }
        // What the old enum also accepted: any field order, integers, ignored extra fields (an overdamped
        // sampler's gamma and u among them, whatever their type).
        for (text, want) in [
            (
                r#"{"delta":0.5,"kind":"overdamped"}"#,
                Sampler::overdamped(0.5),
            ),
            (
                r#"{"kind":"overdamped","delta":1}"#,
                Sampler::overdamped(1.0),
            ),
            (
                r#"{"kind":"overdamped","delta":0.5,"gamma":3.0,"u":2.0}"#,
                Sampler::overdamped(0.5),
            ),
            (
                r#"{"kind":"overdamped","delta":0.5,"gamma":"x","u":[{}]}"#,
                Sampler::overdamped(0.5),
            ),
            (
                r#"{"kind":"overdamped","delta":0.5,"zzz":[1,2]}"#,
                Sampler::overdamped(0.5),
            ),
            (
                r#"{"u":1.0,"kind":"cheng","gamma":0.25,"delta":1.0}"#,
                Sampler::cheng(1.0, 0.25, 1.0),
            ),
            // Parsing does not validate (run files are validated where they are used).
            (
                r#"{"kind":"cheng","delta":-1.0,"gamma":0.25,"u":1.0}"#,
                Sampler::cheng(-1.0, 0.25, 1.0),
            ),
        ] {
            let got: Sampler = serde_json::from_str(text).expect(text);
            assert_eq!(got, want, "{text}");
        }
        // ... and what it refused, with the same messages (positions aside).
        for (text, want) in [
            (
                r#"{"kind":"sachs","delta":1.0,"gamma":0.25}"#,
                "missing field `u`",
            ),
            (
                r#"{"kind":"sachs","delta":1.0,"u":0.25}"#,
                "missing field `gamma`",
            ),
            (
                r#"{"kind":"sachs","gamma":1.0,"u":0.25}"#,
                "missing field `delta`",
            ),
            (
                r#"{"kind":"hmc","delta":1.0}"#,
                "unknown variant `hmc`, expected one of `overdamped`, `sachs`, `cheng` at line 1 column 13",
            ),
            (
                r#"{"kind":"ula","delta":1.0}"#,
                "unknown variant `ula`, expected one of `overdamped`, `sachs`, `cheng`",
            ),
            (
                r#"{"kind":"Sachs","delta":1.0,"gamma":0.25,"u":1.0}"#,
                "unknown variant `Sachs`",
            ),
            (r#"{"delta":1.0}"#, "missing field `kind`"),
            (
                r#"{"kind":3,"delta":1.0}"#,
                "invalid type: integer `3`, expected variant identifier",
            ),
            (
                r#"{"kind":"sachs","delta":"x","gamma":0.25,"u":1.0}"#,
                "invalid type: string \"x\", expected f64",
            ),
            (
                r#"{"kind":"sachs","delta":1.0,"gamma":null,"u":1.0}"#,
                "invalid type: null, expected f64",
            ),
            (
                r#"{"kind":"overdamped","delta":0.5,"delta":0.7}"#,
                "duplicate field `delta`",
            ),
            (
                r#""overdamped""#,
                "invalid type: string \"overdamped\", expected internally tagged enum Sampler",
            ),
        ] {
            let e = serde_json::from_str::<Sampler>(text)
                .expect_err(text)
                .to_string();
            assert!(e.starts_with(want), "{text}: {e}");
        }
    }

    #[test]
    fn names_aliases_and_validation_messages() {
        let s = Sampler::from_name("ula", 0.1, -1.0, 1.0).expect("gamma is not read");
        assert_eq!(s, Sampler::overdamped(0.1));
        assert_eq!(s.gamma_u(), None);
        assert!(!s.is_underdamped());
        assert_eq!(
            Sampler::from_name("alg1", 0.1, 1.0, 2.0).expect("sachs"),
            Sampler::sachs(0.1, 1.0, 2.0)
        );
        assert_eq!(
            Sampler::from_name("alg2", 0.1, 1.0, 2.0).expect("cheng"),
            Sampler::cheng(0.1, 1.0, 2.0)
        );
        for (name, d, g, u, want) in [
            (
                "hmc",
                0.1,
                1.0,
                1.0,
                "invalid parameter: unknown sampler 'hmc' (overdamped, sachs, cheng)",
            ),
            (
                "Sachs",
                1.0,
                1.0,
                1.0,
                "invalid parameter: unknown sampler 'Sachs' (overdamped, sachs, cheng)",
            ),
            (
                "alg2",
                f64::NAN,
                1.0,
                1.0,
                "invalid parameter: delta must be a positive number, got NaN",
            ),
            (
                "sachs",
                0.1,
                0.0,
                1.0,
                "invalid parameter: gamma must be a positive number, got 0",
            ),
            (
                "cheng",
                1.0,
                701.0,
                f64::INFINITY,
                "invalid parameter: u must be a positive number, got inf",
            ),
            (
                "sachs",
                1.0,
                701.0,
                1.0,
                "invalid parameter: gamma * delta = 701 is too large (exp(-gamma delta) underflows)",
            ),
        ] {
            let e = Sampler::from_name(name, d, g, u).expect_err(name);
            assert_eq!(e.to_string(), want);
        }
        let c = Sampler::cheng(0.5, 0.5, 1.0);
        assert_eq!(c.with_delta(0.3), Sampler::cheng(0.3, 0.5, 1.0));
        assert_eq!(c.gamma_u(), Some((0.5, 1.0)));
        assert_ne!(c, Sampler::sachs(0.5, 0.5, 1.0));
        assert_eq!(
            format!("{c:?}"),
            r#"Sampler { kind: "cheng", delta: 0.5, gamma: 0.5, u: 1.0 }"#
        );
    }
}
