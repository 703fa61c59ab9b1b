//! The workspaces (the app's tabs): the [`Workspace`] trait each workspace's file implements, and the
//! `workspaces!` macro whose one invocation in `app/mod.rs` lists them. From that list come the [`Tab`] enum (the
//! tab bar's order, `--tab` names and help), the persisted [`Settings`](crate::app::Settings) with one field per
//! workspace, the per-workspace runtime state in `App`, and the routing of drawing, `--autostart`, worker frames and
//! device changes to the open (or every) workspace.

use std::any::TypeId;

use egui::Ui;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Actions, App, Frame};

/// A workspace of the app, implemented by a unit struct in `src/app/<name>.rs` (the file the registry line names).
/// Its functions take the whole [`App`]: the workspace's own settings are `app.settings.<name>`, its runtime state
/// `app.ws.<name>`, beside what the shell shares (the loaded models, the drawing pad, the banner).
pub trait Workspace {
    /// What persists between sessions (`Settings::<name>`, saved as JSON); `()` for nothing, which is not saved.
    type Settings: Clone
        + std::fmt::Debug
        + PartialEq
        + Default
        + Serialize
        + DeserializeOwned
        + 'static;
    /// Runtime state (views, textures, snapshots): `app.ws.<name>`, never saved.
    type State: Default;

    /// The `--tab` name (lower case).
    const NAME: &'static str;
    /// Other names `--tab` accepts.
    const ALIASES: &'static [&'static str] = &[];
    /// The label on the tab.
    const LABEL: &'static str;
    /// What `--autostart` starts here, for `--tab`'s help (`None`: nothing).
    const AUTOSTART: Option<&'static str> = None;

    /// Replaces every setting the app cannot use by its default; returns the names of those replaced.
    fn sanitize(_settings: &mut Self::Settings) -> Vec<&'static str> {
        Vec::new()
    }

    /// Draws the workspace below the top bar (while it is the open tab), queueing what it asks for in `actions`.
    fn show(app: &mut App, ui: &mut Ui, actions: &mut Actions);

    /// `--autostart` while open, called every frame until it clears `app.autostart`: start the main action once its
    /// models are loaded. By default there is none.
    fn autostart(app: &mut App, _actions: &mut Actions) {
        app.autostart = false;
    }

    /// Takes a frame from the worker that belongs to this workspace, or hands it back for the next one.
    fn apply_frame(_app: &mut App, frame: Frame) -> Option<Frame> {
        Some(frame)
    }

    /// The worker moved to another device: runs and flows did not survive.
    fn device_changed(_app: &mut App) {}
}

/// Serde's `skip_serializing_if` for a workspace's settings: a workspace without settings (`()`) saves no key.
pub(crate) fn nothing_to_save<T: 'static>(_: &T) -> bool {
    TypeId::of::<T>() == TypeId::of::<()>()
}

/// `a, b or c`.
pub(crate) fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The registry: `file::Type` entries, in the order of the tab bar, each a module `src/app/<file>.rs` whose `Type`
/// implements [`Workspace`]. Generates the modules, [`Tab`], `Settings`, `WorkspaceStates` and the routing.
macro_rules! workspaces {
    ($($(#[$doc:meta])* $file:ident :: $ws:ident),+ $(,)?) => {
        $(pub mod $file;)+

        /// The workspaces, in the order of the tab bar (saved by variant name).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum Tab {
            $($(#[$doc])* $ws,)+
        }

        impl Tab {
            /// Every workspace, in the order of the tab bar.
            pub const ALL: &'static [Tab] = &[$(Tab::$ws),+];

            /// The workspace named `name` on the command line (its name or an alias, in any case).
            pub fn from_name(name: &str) -> Option<Tab> {
                let name = name.trim().to_ascii_lowercase();
                $(
                    if name == <$file::$ws as $crate::app::workspace::Workspace>::NAME
                        || <$file::$ws as $crate::app::workspace::Workspace>::ALIASES.contains(&name.as_str())
                    {
                        return Some(Tab::$ws);
                    }
                )+
                None
            }

            /// The `--tab` name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Tab::$ws => <$file::$ws as $crate::app::workspace::Workspace>::NAME,)+
                }
            }

            /// Name on the tab.
            pub fn label(self) -> &'static str {
                match self {
                    $(Tab::$ws => <$file::$ws as $crate::app::workspace::Workspace>::LABEL,)+
                }
            }

            /// What `--autostart` starts in this workspace, if anything.
            pub fn autostarts(self) -> Option<&'static str> {
                match self {
                    $(Tab::$ws => <$file::$ws as $crate::app::workspace::Workspace>::AUTOSTART,)+
                }
            }
        }

        /// Everything that persists between sessions: the theme, the open workspace, and each workspace's settings
        /// under its file's name (a workspace without settings saves no key).
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct Settings {
            /// Dark theme (else light).
            pub dark: bool,
            /// Open workspace.
            pub tab: Tab,
            $(
                $(#[$doc])*
                #[serde(skip_serializing_if = "crate::app::workspace::nothing_to_save")]
                pub $file: <$file::$ws as $crate::app::workspace::Workspace>::Settings,
            )+
        }

        impl Default for Settings {
            fn default() -> Self {
                Self {
                    dark: true,
                    tab: Tab::ALL[0],
                    $($file: Default::default(),)+
                }
            }
        }

        impl Settings {
            /// Every workspace's [`sanitize`]($crate::app::workspace::Workspace::sanitize), in tab order.
            fn sanitize_workspaces(&mut self) -> Vec<&'static str> {
                let mut fixed = Vec::new();
                $(fixed.extend(<$file::$ws as $crate::app::workspace::Workspace>::sanitize(&mut self.$file));)+
                fixed
            }
        }

        /// The runtime state of every workspace (`App::ws`), under its file's name.
        #[derive(Default)]
        pub(crate) struct WorkspaceStates {
            $(pub(crate) $file: <$file::$ws as $crate::app::workspace::Workspace>::State,)+
        }

        impl App {
            /// Draws the open workspace.
            fn show_workspace(&mut self, ui: &mut Ui, actions: &mut Actions) {
                match self.settings.tab {
                    $(Tab::$ws => <$file::$ws as $crate::app::workspace::Workspace>::show(self, ui, actions),)+
                }
            }

            /// `--autostart` in the open workspace.
            pub(in crate::app) fn autostart_workspace(&mut self, actions: &mut Actions) {
                match self.settings.tab {
                    $(Tab::$ws => <$file::$ws as $crate::app::workspace::Workspace>::autostart(self, actions),)+
                }
            }

            /// Offers a frame to each workspace in turn; returns it if none took it.
            fn workspace_frame(&mut self, frame: Frame) -> Option<Frame> {
                $(let frame = <$file::$ws as $crate::app::workspace::Workspace>::apply_frame(self, frame)?;)+
                Some(frame)
            }

            /// Tells every workspace that the device changed.
            fn workspaces_device_changed(&mut self) {
                $(<$file::$ws as $crate::app::workspace::Workspace>::device_changed(self);)+
            }
        }
    };
}
pub(crate) use workspaces;

/// `--tab`'s help, from the registry.
pub fn tab_help() -> String {
    let names: Vec<&str> = super::Tab::ALL.iter().map(|t| t.name()).collect();
    let starts: Vec<&str> = super::Tab::ALL
        .iter()
        .filter_map(|t| t.autostarts())
        .collect();
    format!(
        "Workspace to open: {}. With --autostart its main action starts ({})",
        or_list(&names),
        starts.join(", ")
    )
}

/// The `--tab` names, for an error message: `walk-jump, nebula, ...`.
pub fn tab_names() -> String {
    super::Tab::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}
