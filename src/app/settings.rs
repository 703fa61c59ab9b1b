//! What persists between sessions: the open workspace ([`Tab`]) and the parameters of every workspace
//! ([`Settings`], generated from the workspace registry in `app/mod.rs`), kept as JSON text in eframe's storage and
//! read back with the values the app cannot use replaced.

pub use super::{Settings, Tab};

/// Key of the settings (JSON text) in eframe's storage.
pub const SETTINGS_KEY: &str = "walkjump.settings";

impl Settings {
    /// Reads saved settings. Unreadable text falls back to the defaults, and values out of range (NaN or
    /// non-positive step sizes, zero chains, ...) are replaced by their defaults; the second value says what was
    /// done, in one line, when anything was.
    pub fn from_json(text: &str) -> (Settings, Option<String>) {
        match serde_json::from_str::<Settings>(text) {
            Ok(mut s) => {
                let fixed = s.sanitize();
                let note = (!fixed.is_empty()).then(|| {
                    format!(
                        "saved settings had invalid values ({}); defaults used for those",
                        fixed.join(", ")
                    )
                });
                (s, note)
            }
            Err(e) => (
                Settings::default(),
                Some(format!(
                    "saved settings are unreadable ({}); using the defaults",
                    crate::error::one_line(&e.to_string())
                )),
            ),
        }
    }

    /// Replaces every value the app cannot use by its default (each workspace's
    /// [`sanitize`](super::workspace::Workspace::sanitize), in tab order); returns the names of the fields replaced.
    pub fn sanitize(&mut self) -> Vec<&'static str> {
        self.sanitize_workspaces()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::app::walk;

    #[test]
    fn settings_fill_missing_fields_with_defaults() {
        // An older settings file with only some keys still loads.
        let s: Settings = serde_json::from_str(r#"{"dark": false, "walk": {"chains": 64}}"#)
            .expect("partial settings");
        assert!(!s.dark);
        assert_eq!(s.walk.chains, 64);
        assert_eq!(s.walk.every, walk::WalkSettings::default().every);
        assert_eq!(s.tab, Tab::WalkJump);
        let back: Settings =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("round trip");
        assert_eq!(back, s);
    }

    #[test]
    fn corrupted_settings_fall_back_to_defaults_with_a_message() {
        let (s, note) = Settings::from_json("{\"dark\": false, \"walk\": {\"chains\": 6");
        assert_eq!(s, Settings::default());
        let note = note.expect("a message");
        assert!(note.contains("unreadable"), "{note}");
        assert!(!note.contains('\n'));
        let (s, note) = Settings::from_json("not json at all \u{0}\u{ff}");
        assert_eq!(s, Settings::default());
        assert!(note.is_some());
        // Readable but unusable values are replaced one by one; the rest is kept.
        let (s, note) = Settings::from_json(
            r#"{"dark": false, "walk": {"delta": -1.0, "gamma": 0.0, "chains": 100000, "seed": 9},
                "nebula": {"eta": -3.0, "starts": 0}, "denoise": {"class": 42, "count": 0}}"#,
        );
        let note = note.expect("a message");
        for field in [
            "delta",
            "gamma",
            "chains",
            "eta",
            "starts",
            "class",
            "digits shown",
        ] {
            assert!(note.contains(field), "{field}: {note}");
        }
        assert!(!s.dark);
        assert_eq!(s.walk.seed, 9);
        assert_eq!(s.walk.delta, walk::WalkSettings::default().delta);
        assert_eq!(s.walk.chains, walk::WalkSettings::default().chains);
        assert_eq!(s.nebula.eta, None);
        assert_eq!(s.denoise.class, None);
        // Good settings pass untouched.
        let text = serde_json::to_string(&Settings::default()).expect("json");
        assert_eq!(Settings::from_json(&text), (Settings::default(), None));
    }

    /// Settings saved before the samplers had a registry name their sampler kinds by the old enum's variants
    /// (`"Overdamped"`, `"Sachs"`, `"Cheng"`); they load unchanged, and are saved from then on by registered name.
    #[test]
    fn settings_saved_with_the_old_sampler_enum_still_load() {
        // `Settings::default()` as the code before the registry wrote it, with two kinds changed.
        let old = r#"{"dark":true,"tab":"WalkJump","walk":{"sampler":"Cheng","delta":0.28284271247461906,"gamma":0.5,"u":1.0,"every":10,"chains":16,"init":"uniform_noise","seed":0,"show_noisy":false,"tuned_for":null,"ab":false,"b":{"sampler":"Overdamped","delta":1.1313708498984762,"gamma":0.5,"u":1.0},"cond":{"on":false,"source":"TestDigit","digit":0,"preset":"Top","share":0.3,"start_from_image":false}},"nebula":{"source":"Uniform","eta":null,"tol":0.1,"max_steps":4000,"starts":64,"seed":0,"merge":0.02,"creative":0.1,"hold":false,"hold_preset":"Top","hold_digit":0,"hold_per_start":true},"denoise":{"class":null,"kind":"Gaussian","level":1.0,"count":6,"aggregate":200,"seed":0,"drawn":false,"draws":3},"lab":{"mode":"Particles","scene":{"means":[[-2.0,0.0],[2.0,0.0]],"stds":[0.5,0.5],"weights":[0.5,0.5]},"sigma":0.5,"half_width":5.0,"a":{"kind":"Sachs","delta":0.1,"gamma":1.0,"u":1.0},"b":{"kind":"Overdamped","delta":1.0,"gamma":1.0,"u":1.0},"ab":false,"particles":2000,"seed":0,"init":"Uniform","steps_per_frame":5,"trail_len":200,"new_std":0.3,"click_adds":true,"contours":true,"log_scale":false,"arrows":true,"spheres":true,"sphere_radius_sigma":false,"jumps":true,"trails":true}}"#;
        let (s, note) = Settings::from_json(old);
        assert_eq!(note, None);
        let mut want = Settings::default();
        want.walk.sampler = crate::sampling::SamplerKind::from_name("cheng").expect("cheng");
        want.lab.a.kind = crate::sampling::SamplerKind::from_name("sachs").expect("sachs");
        assert_eq!(s, want);
        assert_eq!(
            s.walk.sampler(),
            crate::sampling::Sampler::cheng(s.walk.delta, s.walk.gamma, s.walk.u)
        );
        let text = serde_json::to_string(&s).expect("json");
        assert!(
            text.contains(r#""sampler":"cheng""#) && text.contains(r#""kind":"sachs""#),
            "{text}"
        );
        assert_eq!(Settings::from_json(&text), (want, None));
        // An unknown sampler makes the file unreadable, as an unknown variant did.
        let (s, note) = Settings::from_json(r#"{"walk": {"sampler": "hmc"}}"#);
        assert_eq!(s, Settings::default());
        assert!(note.is_some_and(|n| n.contains("unknown variant `hmc`")));
    }

    /// Settings as the code before the workspace registry wrote them (the same keys in the same order: `dark`,
    /// `tab`, then one per workspace with settings; Models has none and saves no key) load to the same values and
    /// are written back byte for byte.
    #[test]
    fn settings_written_before_the_workspace_registry_load_and_save_unchanged() {
        let old = r#"{"dark":false,"tab":"Lab","walk":{"sampler":"cheng","delta":0.5,"gamma":0.25,"u":1.0,"every":20,"chains":32,"init":"uniform_noise","seed":7,"show_noisy":true,"tuned_for":null,"ab":false,"b":{"sampler":"overdamped","delta":1.1313708498984762,"gamma":0.5,"u":1.0},"cond":{"on":false,"source":"TestDigit","digit":3,"preset":"Top","share":0.3,"start_from_image":false}},"nebula":{"source":"Uniform","eta":0.05,"tol":0.1,"max_steps":4000,"starts":16,"seed":2,"merge":0.02,"creative":0.1,"hold":false,"hold_preset":"Top","hold_digit":0,"hold_per_start":true},"denoise":{"class":4,"kind":"Gaussian","level":0.5,"count":6,"aggregate":200,"seed":0,"drawn":false,"draws":3},"lab":{"mode":"Particles","scene":{"means":[[-2.0,0.0],[2.0,0.0]],"stds":[0.5,0.5],"weights":[0.5,0.5]},"sigma":0.5,"half_width":5.0,"a":{"kind":"sachs","delta":0.1,"gamma":1.0,"u":1.0},"b":{"kind":"overdamped","delta":1.0,"gamma":1.0,"u":1.0},"ab":false,"particles":2000,"seed":0,"init":"Uniform","steps_per_frame":5,"trail_len":200,"new_std":0.3,"click_adds":true,"contours":true,"log_scale":false,"arrows":true,"spheres":true,"sphere_radius_sigma":false,"jumps":true,"trails":true}}"#;
        let (s, note) = Settings::from_json(old);
        assert_eq!(note, None);
        assert_eq!((s.dark, s.tab), (false, Tab::Lab));
        assert_eq!((s.walk.chains, s.walk.every, s.walk.seed), (32, 20, 7));
        assert_eq!(s.walk.sampler.name(), "cheng");
        assert_eq!((s.nebula.eta, s.nebula.starts), (Some(0.05), 16));
        assert_eq!((s.denoise.class, s.denoise.level), (Some(4), 0.5));
        assert_eq!(s.lab.a.kind.name(), "sachs");
        assert_eq!(serde_json::to_string(&s).expect("json"), old);
        assert_eq!(s.models, ());
    }

    /// A seeded mutation fuzzer over the settings text (the settings live in the app, whose dependencies do not
    /// build under cargo-fuzz in reasonable time here): whatever the bytes, reading them never panics and always
    /// gives settings the app can use. `WALKJUMP_SETTINGS_FUZZ_SECS=600` runs it for ten minutes instead of 20 000
    /// inputs, and prints how many it tried.
    #[test]
    fn mutated_settings_never_panic_and_are_always_usable() {
        let secs: Option<f64> = std::env::var("WALKJUMP_SETTINGS_FUZZ_SECS")
            .ok()
            .and_then(|v| v.parse().ok());
        let iters = if secs.is_some() { usize::MAX } else { 20_000 };
        let start = Instant::now();
        let mut tried = 0usize;
        let mut base = Settings::default();
        base.walk.tuned_for = Some("ab".repeat(32));
        base.nebula.eta = Some(0.1);
        base.denoise.class = Some(3);
        let seed_text = serde_json::to_string_pretty(&base).expect("json");
        let tokens: [&[u8]; 12] = [
            b"-1",
            b"0",
            b"1e400",
            b"NaN",
            b"null",
            b"\"",
            b"{",
            b"}",
            b"[",
            b"18446744073709551616",
            b"\"Sachs\"",
            b"\\u0000",
        ];
        let mut rng = crate::rng::Rng::new(11);
        let mut pick = |n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
        for _ in 0..iters {
            if secs.is_some_and(|s| start.elapsed().as_secs_f64() > s) {
                break;
            }
            tried += 1;
            let mut bytes = seed_text.as_bytes().to_vec();
            for _ in 0..1 + pick(4) {
                let at = pick(bytes.len() + 1);
                match pick(4) {
                    0 if at < bytes.len() => bytes[at] = pick(256) as u8,
                    1 if at < bytes.len() => {
                        let end = (at + 1 + pick(8)).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    _ => {
                        let t = tokens[pick(tokens.len())];
                        bytes.splice(at..at, t.iter().copied());
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let (mut s, note) = Settings::from_json(&text);
            if let Some(n) = &note {
                assert!(!n.contains('\n'), "{n}");
            }
            assert!(s.sanitize().is_empty(), "{text}");
            assert!(s.walk.sampler().delta() > 0.0);
        }
        eprintln!(
            "settings fuzz: {tried} mutated inputs in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
}
